//! The `pagerduty` service (PagerDuty). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs pagerduty` shows them.

use lookout::prelude::*;
use lookout::text::budget::truncate;
use lookout::text::wording::{attributes, item_label};

lookout::service! {
    /// PagerDuty
    ///
    /// Opens a PagerDuty alert when a new defect is filed or an item is blocked, and
    /// resolves it when the defect is completed or the block is lifted, through the Events
    /// API v2 (`POST https://events.pagerduty.com/v2/enqueue`).
    ///
    /// 1. In PagerDuty, open the service that should be alerted (or create one) and go to
    ///    **Integrations → Add an integration → Events API v2**.
    /// 2. Copy the **Integration Key** (32 characters) into `routing_key`. It is the only
    ///    credential this needs; anyone holding it can open alerts on that service.
    /// 3. Choose the `severity` of the alerts (`info` by default, so that PagerDuty's
    ///    urgency rules decide who is woken up), and in `item_types` which new items
    ///    open an alert (`defect` by default).
    /// 4. For an EU account, set `api_url = "https://events.eu.pagerduty.com/v2/enqueue"`.
    ///
    /// Why these events: PagerDuty pages people, so it only hears about problems. A new
    /// defect (`Item.created`) and a new block (`Block.created`) open an alert; an item
    /// update to *completed* or *accepted* (`Item.updated`), or a block event marked
    /// `unblocked`, resolves it. Comments, favorites and deploys are not incidents and
    /// are not sent. Each alert's `dedup_key` is fixed per item (or per blocked/blocking
    /// pair), so repeats of the same event add to the open alert instead of paging again,
    /// and the resolve finds it.
    pub struct PagerDuty;

    category: Incident,
    events: &["Item.created", "Item.updated", "Block.created"],
    // The Events API takes about 120 events per minute per integration.
    rate_limit: RateLimit::per_second(2).burst(10),
    // developer.pagerduty.com Events API v2: `summary` 1,024 characters, `dedup_key` 255.
    limits: Limits::cut(&[
        Limit::field("/payload/summary", 1_024, Unit::Chars),
        Limit::field("/dedup_key", 255, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"routing_key = "0123456789abcdef0123456789abcdef""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string(
        "routing_key",
        "The Events API v2 integration key of the PagerDuty service.",
    )
    .secret(),
    OptionSpec::choice(
        "severity",
        &["critical", "error", "warning", "info"],
        "The severity of the alerts.",
    )
    .public()
    .default("info"),
    OptionSpec::new(
        "item_types",
        Kind::List,
        "Item types whose creation opens an alert (story, task, defect, test).",
    )
    .public()
    .default("defect"),
    OptionSpec::url("api_url", "The Events API v2 endpoint.")
        .public()
        .default("https://events.pagerduty.com/v2/enqueue"),
];

/// The statuses that mean an item's problem is over.
const DONE: &[&str] = &["completed", "accepted"];

/// PagerDuty's limit on `payload.summary`, in characters.
const SUMMARY_CHARS: usize = 1024;

impl Service for PagerDuty {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let event = job.event;
        let options = job.options;
        let (action, dedup_key) = match attributes(event)? {
            Attributes::Item(item) => item_action(event, item, options.list("item_types"))?,
            Attributes::Block(block) => {
                let key = format!(
                    "{}:block:{}:{}",
                    key_prefix(event),
                    block.blocked.number,
                    block.item.number
                );
                let action = if block.unblocked {
                    "resolve"
                } else {
                    "trigger"
                };
                (action, key)
            }
            _ => {
                return Err(BuildError::Skip(format!(
                    "{} is not an incident",
                    event.kind()
                )));
            }
        };
        let mut body = json!({
            "routing_key": options.str("routing_key").unwrap_or_default(),
            "event_action": action,
            "dedup_key": dedup_key,
        });
        if action == "trigger" {
            let message = job.message()?;
            let severity = options.str("severity").unwrap_or("info");
            extend(&mut body, alert(event, &message, severity));
        }
        let url = options.str("api_url").unwrap_or_default();
        let url = url
            .parse()
            .map_err(|e| BuildError::Invalid(format!("api_url: {e}")))?;
        Ok(vec![HttpRequest::post(url).json(body).into()])
    }
}

/// What an item event means to PagerDuty: open (new item of a watched type), resolve
/// (watched item done), or nothing.
fn item_action(
    event: &Event,
    item: &Item,
    watched: Vec<&str>,
) -> Result<(&'static str, String), BuildError> {
    if !watched.iter().any(|t| t.eq_ignore_ascii_case(&item.kind)) {
        return Err(BuildError::Skip(format!(
            "{} items do not open alerts (item_types)",
            item.kind
        )));
    }
    let key = format!("{}:item:{}", key_prefix(event), item.number);
    let done = item.status.as_deref().is_some_and(|s| DONE.contains(&s));
    match (event.action.as_str(), done) {
        ("created", _) => Ok(("trigger", key)),
        (_, true) => Ok(("resolve", key)),
        _ => Err(BuildError::Skip(format!(
            "the {} is not done: nothing to tell PagerDuty",
            item.kind
        ))),
    }
}

/// Dedup keys start with the product, so two products never share an alert.
fn key_prefix(event: &Event) -> String {
    format!("sprintly:{}", event.product.id)
}

/// The alert's description: summary, source, severity, details and links. All plain
/// text: PagerDuty shows these fields as they are, so nothing is escaped.
fn alert(event: &Event, message: &Message, severity: &str) -> Value {
    let mut details = Map::new();
    details.insert("event".into(), Value::from(event.kind()));
    details.insert("by".into(), Value::from(message.actor.clone()));
    if let Some(quote) = &message.quote {
        details.insert("description".into(), Value::from(quote.clone()));
    }
    for field in &message.fields {
        details.insert(
            field.name.to_lowercase(),
            Value::from(Dialect::PLAIN.rich(&field.value)),
        );
    }
    let links: Vec<Value> = match event.attributes() {
        Ok(Attributes::Block(block)) => [&block.blocked, &block.item]
            .into_iter()
            .map(link)
            .collect(),
        Ok(Attributes::Item(item)) => vec![link(item)],
        _ => Vec::new(),
    };
    json!({
        "payload": {
            "summary": truncate(&Dialect::PLAIN.rich(&message.headline), SUMMARY_CHARS - 3),
            "source": event.product.name,
            "severity": severity,
            "class": class_of(event),
            "custom_details": details,
        },
        "links": links,
        "client": "Lookout",
    })
}

fn link(item: &Item) -> Value {
    json!({"href": item.short_url, "text": item_label(item)})
}

fn class_of(event: &Event) -> String {
    match event.attributes() {
        Ok(Attributes::Item(item)) => item.kind.clone(),
        _ => event.model.to_lowercase(),
    }
}

fn extend(body: &mut Value, more: Value) {
    if let (Value::Object(body), Value::Object(more)) = (body, more) {
        body.extend(more);
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, assert_hidden, dispatch_one, fixture_json};
    use serde_json::{Value, json};

    const KEY: &str = "R0UT1NGk3y0123456789abcdefABCDEF";

    fn options(server: &CaptureServer, types: &[&str]) -> Value {
        json!({
            "routing_key": KEY,
            "severity": "warning",
            "item_types": types,
            "api_url": format!("{}/v2/enqueue", server.url()),
        })
    }

    /// Sends one event (payload JSON), which must not fail; returns the report as shown,
    /// which must not show the routing key.
    async fn send(options: &Value, event_json: &str) -> String {
        let report = dispatch_one("pagerduty", options.clone(), event_json).await;
        assert!(!report.has_failures(), "{report:?}");
        assert_hidden(&report, KEY)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn triggers_an_alert_with_plain_text_and_a_stable_dedup_key() {
        let server = CaptureServer::start();
        let options = options(&server, &["story", "defect"]);
        send(&options, &fixture_json("item-markup")).await;
        send(&options, &fixture_json("item-markup")).await;

        let got = server.requests_to("/v2/enqueue");
        assert_eq!(got.len(), 2);
        let body = got[0].json();
        assert_eq!(body["routing_key"], KEY);
        assert_eq!(body["event_action"], "trigger");
        assert_eq!(body["dedup_key"], "sprintly:1111:item:1212");
        assert_eq!(got[1].json()["dedup_key"], body["dedup_key"]);
        let payload = &body["payload"];
        assert_eq!(payload["severity"], "warning");
        assert_eq!(payload["source"], "sprint.ly");
        assert_eq!(payload["class"], "story");
        // Plain text: the title's markup arrives exactly as typed, not escaped or rendered.
        let summary = payload["summary"].as_str().unwrap();
        assert!(
            summary.contains("#1212 - <b>&\"x\"</b> *bold*"),
            "{summary}"
        );
        assert_eq!(payload["custom_details"]["status"], "Backlog");
        assert_eq!(body["links"][0]["href"], "http://sprint.ly/i/1/116550/");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unwatched_types_and_other_models_send_nothing() {
        let server = CaptureServer::start();
        let options = options(&server, &["defect"]);
        let shown = send(&options, &fixture_json("item")).await;
        assert!(shown.contains("story items do not open alerts"), "{shown}");
        send(&options, &fixture_json("comment")).await;
        send(&options, &fixture_json("item-unassigned")).await;
        let got = server.requests();
        assert_eq!(got.len(), 1, "only the defect: {got:?}");
        assert_eq!(got[0].json()["payload"]["class"], "defect");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn done_items_and_lifted_blocks_resolve() {
        let server = CaptureServer::start();
        let options = options(&server, &["story"]);
        let done = fixture_json("item-updated").replace("\"in-progress\"", "\"completed\"");
        send(&options, &done).await;
        let lifted = fixture_json("block").replace("\"unblocked\": false", "\"unblocked\": true");
        send(&options, &lifted).await;

        let got = server.requests();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[0].json(),
            json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": "sprintly:1111:item:1212"})
        );
        assert_eq!(got[1].json()["event_action"], "resolve");
        assert!(
            got[1].json()["dedup_key"]
                .as_str()
                .unwrap()
                .starts_with("sprintly:1111:block:")
        );
    }
}
