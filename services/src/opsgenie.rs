//! The `opsgenie` service (Opsgenie and Jira Service Management). Its Markdown install
//! docs are the doc comments on the struct registered below; `lookout docs opsgenie`
//! shows them.

use lookout::prelude::*;
use lookout::text::budget::truncate;
use sha2::{Digest, Sha256};

lookout::service! {
    /// Opsgenie / Jira Service Management
    ///
    /// Opens an alert for every new item, comment, block, favorite and deploy through
    /// the Opsgenie Alert API v2 (`POST https://api.opsgenie.com/v2/alerts`), or its
    /// successor in Jira Service Management (`POST
    /// https://api.atlassian.com/jsm/ops/integration/v2/alerts`), which takes the same
    /// alert and key. The alert's message says what happened; its description holds the
    /// whole message; its details hold the item's fields.
    ///
    /// 1. In Opsgenie, open **Settings → Integrations → Add integration** and choose
    ///    **API**; in Jira Service Management, open **Operations → Integrations → Add
    ///    integration** and choose **API**. Give it a name and the team that gets the
    ///    alerts.
    /// 2. Copy the integration's **API key** into `api_key` (it is sent as
    ///    `Authorization: GenieKey …` and never shown) and turn the integration on.
    /// 3. Set `api_url` to where the account lives: `https://api.opsgenie.com` (the
    ///    default), `https://api.eu.opsgenie.com` for the EU instance, or
    ///    `https://api.atlassian.com/jsm/ops/integration` for Jira Service Management.
    ///    Opsgenie's own API stops working on 2027-04-05; move to the last one by then.
    /// 4. Optionally set `priority` (`P1` highest to `P5`; `P3` by default).
    ///
    /// Each alert's `alias` is derived from the event itself, so a delivery tried again
    /// never opens a second alert. Opsgenie accepts alerts with `202 Accepted` and
    /// creates them shortly after. An answer of `401` or `403` (the key was deleted or
    /// disabled) stops the sending until you fix the configuration.
    pub struct Opsgenie;

    category: Incident,
    answers: Answers::status("Opsgenie", &[
        Means::gone(
            &["401", "403"],
            "the API key is unknown, disabled or not allowed to create alerts",
        ),
    ]),
    // docs.opsgenie.com/docs/alert-api#create-alert
    limits: Limits::cut(&[
        Limit::field("/message", 130, Unit::Chars),
        Limit::field("/alias", 512, Unit::Chars),
        Limit::field("/description", 15_000, Unit::Chars),
        Limit::field("/note", 25_000, Unit::Chars),
        Limit::field("/entity", 512, Unit::Chars),
        Limit::field("/tags", 20, Unit::Entries),
        Limit::field("/tags/*", 50, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"api_key = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
priority = "P3""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("api_key", "The API integration's key.").secret(),
    OptionSpec::url(
        "api_url",
        "Where the account lives: `https://api.opsgenie.com`, `https://api.eu.opsgenie.com` or `https://api.atlassian.com/jsm/ops/integration`.",
    )
    .public()
    .default("https://api.opsgenie.com"),
    OptionSpec::choice(
        "priority",
        &["P1", "P2", "P3", "P4", "P5"],
        "The alerts' priority.",
    )
    .public()
    .default("P3"),
];

/// The Alert API's limits in characters (docs.opsgenie.com/docs/alert-api, "Create
/// Alert"): longer values are cut by Opsgenie, so Lookout cuts them where it chooses.
const MESSAGE_CHARS: usize = 130;
const DESCRIPTION_CHARS: usize = 15000;
const TAG_CHARS: usize = 50;

impl Service for Opsgenie {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let event = job.event;
        let details: Map<String, Value> = message
            .fields
            .iter()
            .map(|f| (f.name.to_owned(), Dialect::PLAIN.rich(&f.value).into()))
            .collect();
        // Plain text everywhere: Opsgenie shows these fields as they are.
        let body = json!({
            // `truncate` adds "...", hence the 3.
            "message": truncate(&Dialect::PLAIN.rich(&message.headline), MESSAGE_CHARS - 3),
            "alias": alias(event),
            "description": truncate(&message.plain(), DESCRIPTION_CHARS - 3),
            "details": details,
            "entity": truncate(&event.product.name, TAG_CHARS - 3),
            "source": "Lookout",
            "tags": [event.kind().to_lowercase(), truncate(&event.product.name, TAG_CHARS - 3)],
            "priority": job.options.str("priority").unwrap_or("P3"),
        });
        let base = job.options.str("api_url").unwrap_or_default();
        let url = endpoint(base, &["v2", "alerts"])
            .map_err(|e| BuildError::Invalid(format!("api_url: {e}")))?;
        let key = job.options.str("api_key").unwrap_or_default();
        let request = HttpRequest::post(url)
            .json(body)
            .secret_header("Authorization", format!("GenieKey {key}"));
        Ok(vec![request.into()])
    }
}

/// The same event always gets the same alias, whichever attempt sends it: Opsgenie then
/// counts a repeat on the open alert instead of opening another.
fn alias(event: &Event) -> String {
    let digest = Sha256::digest(event.forwarded().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("lookout-{hex}")
}

#[cfg(test)]
mod tests {
    use lookout::Outcome;
    use lookout_testkit::assert_disabled;
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use serde_json::{Value, json};

    const KEY: &str = "0psg3nie-key-5ecret-0123456789ab";

    fn options(api_url: &str) -> Value {
        json!({"api_key": KEY, "api_url": api_url, "priority": "P2"})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn creates_an_alert_with_a_stable_alias_and_short_message() {
        let api_url = "https://api.atlassian.com/jsm/ops/integration";
        let options = |_: &CaptureServer| options(api_url);
        let (_, sent) = deliver_one("opsgenie", options, &fixture_json("item"), KEY).await;
        assert_eq!(sent.path, "/jsm/ops/integration/v2/alerts");
        assert_eq!(sent.header("host"), Some("api.atlassian.com"));
        assert_eq!(
            sent.header("authorization"),
            Some(format!("GenieKey {KEY}").as_str())
        );
        let body = sent.json();
        let message = body["message"].as_str().unwrap();
        assert_eq!(message.chars().count(), 130, "{message}");
        assert!(message.starts_with("Joe S. created the story #1212 - As a user"));
        assert!(message.ends_with("..."));
        assert_eq!(body["priority"], "P2");
        assert_eq!(body["details"]["Status"], "Backlog");
        assert_eq!(body["tags"], json!(["item.created", "sprint.ly"]));
        // Derived from the event: another attempt of it has the same alias.
        let event = lookout_testkit::fixture("item");
        assert_eq!(body["alias"], super::alias(&event));
        assert_eq!(body["alias"].as_str().unwrap().len(), "lookout-".len() + 32);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_key_disables_the_target() {
        let options = options("https://api.eu.opsgenie.com");
        let reply = Reply::status(401).body(r#"{"message":"Key format is not valid!"}"#);
        let item = fixture_json("item");
        let outcome = outcome_of_reply("opsgenie", options.clone(), &item, reply, KEY).await;
        assert_disabled(&outcome, Some(401), "gone: Opsgenie: ");
        let accepted = Reply::status(202)
            .body(r#"{"result":"Request will be processed","took":0.1,"requestId":"r"}"#);
        let outcome = outcome_of_reply("opsgenie", options, &item, accepted, KEY).await;
        assert!(matches!(outcome, Outcome::Delivered { status: 202 }));
    }
}
