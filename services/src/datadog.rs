//! The `datadog` service (Datadog Events). Its Markdown install docs are the doc comments
//! on the struct registered below; `lookout docs datadog` shows them.

use lookout::prelude::*;
use lookout::text::budget::{fit, truncate};

lookout::service! {
    /// Datadog
    ///
    /// Posts every event (new, updated and deleted items, comments, blocks, favorites,
    /// deploys) to Datadog's event stream through the Events API v1
    /// (`POST https://api.{site}/api/v1/events`): a title, what happened in Markdown with
    /// a link to the item and its fields, tags for the product and the kind of event,
    /// and the item as aggregation key, so that an item's events are grouped.
    ///
    /// 1. In Datadog, open **Organization Settings → API Keys** and select **New Key**.
    ///    Name it `lookout` and copy the key into `api_key` (an API key, not an
    ///    application key). It is sent as `DD-API-KEY` and never shown in reports.
    /// 2. Set `site` to your Datadog site, the host of the address you log in at:
    ///    `datadoghq.com` (US1, the default), `us3.datadoghq.com`, `us5.datadoghq.com`,
    ///    `datadoghq.eu`, `ap1.datadoghq.com`, `ap2.datadoghq.com` or `ddog-gov.com`.
    /// 3. Optionally set `alert_type` (`info` by default; `success`, `warning`, `error`…)
    ///    and `tags`, added to every event (`env:prod`, `team:web`).
    ///
    /// Datadog accepts events with `202 Accepted`. An answer of `403` (the key was
    /// revoked, or belongs to another site) stops the sending until you fix the
    /// configuration.
    pub struct Datadog;

    category: Observability,
    events: &["*"],
    answers: Answers::status("Datadog", &[
        Means::gone(&["403"], "the API key is revoked or not valid for this site"),
    ]),
    // docs.datadoghq.com/api/latest/events/: `text` at most 4,000 characters, `title` 100.
    limits: Limits::cut(&[
        Limit::field("/text", 4_000, Unit::Chars),
        Limit::field("/title", 100, Unit::Chars),
        Limit::field("/aggregation_key", 100, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"api_key = "0123456789abcdef0123456789abcdef"
site = "datadoghq.eu"
tags = ["env:prod"]"#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("api_key", "A Datadog API key.").secret(),
    OptionSpec::choice(
        "site",
        &[
            "datadoghq.com",
            "us3.datadoghq.com",
            "us5.datadoghq.com",
            "datadoghq.eu",
            "ap1.datadoghq.com",
            "ap2.datadoghq.com",
            "ddog-gov.com",
            "us2.ddog-gov.com",
        ],
        "Your Datadog site.",
    )
    .public()
    .default("datadoghq.com"),
    OptionSpec::choice(
        "alert_type",
        &[
            "info",
            "success",
            "warning",
            "error",
            "user_update",
            "recommendation",
            "snapshot",
        ],
        "How the events are marked in the event stream.",
    )
    .public()
    .default("info"),
    OptionSpec::list("tags", "More tags for every event (`env:prod`).")
        .public()
        .optional(),
];

/// The Events API's limits (docs.datadoghq.com/api/latest/events/#post-an-event): the
/// text at most 4000 characters, the aggregation key 100; titles are kept to 100 too.
const TITLE_CHARS: usize = 100;
const TEXT_CHARS: usize = 4000;
const AGGREGATION_KEY_CHARS: usize = 100;

/// Datadog reads an event's text as Markdown only between these lines.
const MARKDOWN_START: &str = "%%% \n";
const MARKDOWN_END: &str = "\n %%%";

impl Service for Datadog {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let event = job.event;
        let options = job.options;
        let room = TEXT_CHARS - MARKDOWN_START.len() - MARKDOWN_END.len();
        let markdown = fit(&message.markdown(&Dialect::COMMONMARK), room);
        let mut tags = vec![
            format!("product:{}", event.product.name),
            format!("event:{}", event.kind().to_lowercase()),
        ];
        tags.extend(options.list("tags").into_iter().map(str::to_owned));
        let mut body = json!({
            // `truncate` adds "...", hence the 3.
            "title": truncate(&message.title, TITLE_CHARS - 3),
            "text": format!("{MARKDOWN_START}{markdown}{MARKDOWN_END}"),
            "alert_type": options.str("alert_type").unwrap_or("info"),
            "tags": tags,
        });
        if let Some(key) = aggregation_key(event) {
            body["aggregation_key"] = key.into();
        }
        let site = options.str("site").unwrap_or("datadoghq.com");
        let url = endpoint(&format!("https://api.{site}"), &["api", "v1", "events"])
            .map_err(|e| BuildError::Invalid(format!("site: {e}")))?;
        let key = options.str("api_key").unwrap_or_default();
        let request = HttpRequest::post(url)
            .json(body)
            .secret_header("DD-API-KEY", key);
        Ok(vec![request.into()])
    }
}

/// The item an event is about, so that Datadog groups its events; deploys have none.
fn aggregation_key(event: &Event) -> Option<String> {
    let item = match event.attributes().ok()? {
        Attributes::Item(item) => item,
        Attributes::Comment(comment) => &comment.item,
        Attributes::Block(block) => &block.blocked,
        Attributes::Favorite(favorite) => &favorite.item,
        _ => return None,
    };
    let key = format!("sprintly-{}-item-{}", event.product.id, item.number);
    Some(truncate(&key, AGGREGATION_KEY_CHARS - 3))
}

#[cfg(test)]
mod tests {
    use lookout_testkit::assert_disabled;
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use serde_json::{Value, json};

    const KEY: &str = "dd0g5ecretApiKey0123456789abcdef";

    fn options() -> Value {
        json!({"api_key": KEY, "site": "us5.datadoghq.com", "alert_type": "warning", "tags": ["env:prod"]})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_an_event_to_the_sites_api() {
        let options = |_: &CaptureServer| options();
        let (_, sent) = deliver_one("datadog", options, &fixture_json("comment"), KEY).await;
        assert_eq!(sent.path, "/api/v1/events");
        assert_eq!(sent.header("host"), Some("api.us5.datadoghq.com"));
        assert_eq!(sent.header("dd-api-key"), Some(KEY));
        let body = sent.json();
        assert_eq!(body["alert_type"], "warning");
        assert_eq!(
            body["tags"],
            json!(["product:sprint.ly", "event:comment.created", "env:prod"])
        );
        assert_eq!(body["aggregation_key"], "sprintly-1111-item-1212");
        let text = body["text"].as_str().unwrap();
        assert!(
            text.starts_with("%%% \nJoe S. commented on the task ["),
            "{text}"
        );
        assert!(text.ends_with("\n %%%"), "{text}");
    }

    #[test]
    fn titles_and_texts_keep_to_datadogs_limits() {
        let mut item: Value = serde_json::from_str(&fixture_json("item")).unwrap();
        item["attributes"]["title"] = "t".repeat(300).into();
        item["attributes"]["description"] = "d ".repeat(5000).into();
        let mut deploy: Value = serde_json::from_str(&fixture_json("deploy")).unwrap();
        let one = deploy["attributes"]["items"][0].clone();
        deploy["attributes"]["items"] = vec![one; 300].into();
        let instance =
            lookout::Instance::new("datadog", "datadog", options().as_object().unwrap()).unwrap();
        for payload in [item, deploy] {
            let event = lookout::Event::from_value(payload).unwrap();
            let preview = lookout::dispatch::preview_one(&event, &instance);
            let body = &preview.requests[0].body;
            assert!(body["title"].as_str().unwrap().chars().count() <= 100);
            let text = body["text"].as_str().unwrap();
            assert!(text.chars().count() <= 4000, "{}", text.chars().count());
            assert!(text.ends_with("\n %%%"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_key_disables_the_target() {
        let reply = Reply::status(403).body(r#"{"errors":["Forbidden"]}"#);
        let item = fixture_json("item");
        let outcome = outcome_of_reply("datadog", options(), &item, reply, KEY).await;
        assert_disabled(&outcome, Some(403), "gone: Datadog: ");
    }
}
