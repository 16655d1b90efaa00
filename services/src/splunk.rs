//! The `splunk` service (Splunk HTTP Event Collector). Its Markdown install docs are the
//! doc comments on the struct registered below; `lookout docs splunk` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Splunk
    ///
    /// Sends every event (new, updated and deleted items, comments, blocks, favorites,
    /// deploys) to Splunk through the HTTP Event Collector (HEC), the payload as the
    /// product sent it: `POST {server}/services/collector/event` with
    /// `Authorization: Splunk <token>`, in HEC's JSON event format.
    ///
    /// 1. In Splunk Web, open **Settings → Data inputs → HTTP Event Collector**, select
    ///    **Global Settings**, make sure **All Tokens** is **Enabled**, and note the HTTP
    ///    port (8088 by default). On Splunk Cloud, HEC is on by default.
    /// 2. Select **New Token**, give it a name (`lookout`), and on the next page choose
    ///    the allowed indexes and the default one. Finish, and copy the **Token Value**
    ///    into `token`. It is a secret and never shown in reports.
    /// 3. Set `server` to the collector's base address: `https://splunk.example.com:8088`
    ///    on Splunk Enterprise, `https://http-inputs-<stack>.splunkcloud.com` on Splunk
    ///    Cloud. Lookout appends `/services/collector/event`.
    /// 4. Optionally set `index` (one the token may write to), `sourcetype` (`_json` by
    ///    default, so that Splunk extracts the payload's fields) and `source`
    ///    (`lookout` by default).
    ///
    /// Each Splunk event also carries the indexed fields `lookout_event` (`Item.created`…)
    /// and `product`. An answer of `403` with HEC code 1 or 4 (the token was disabled or
    /// deleted) stops the sending until you fix the configuration; `503` (server busy)
    /// is retried.
    pub struct Splunk;

    category: Observability,
    events: &["*"],
    // HEC's answers carry a code (help.splunk.com/en/splunk-enterprise/get-data-in/
    // collect-http-event-data/troubleshoot-http-event-collector): 1 is a disabled
    // token, 4 an unknown one.
    answers: Answers::json("Splunk", "/code", "/text", &[
        Means::gone(&["1"], "the HEC token is disabled").with_status(&[403]),
        Means::gone(&["4"], "the HEC token is unknown").with_status(&[403]),
    ]),
    limits: Limits::none(
        "a Splunk HEC takes requests up to its `max_content_length`, set by its operator (hundreds of megabytes by default).",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"server = "https://splunk.example.com:8088"
token = "12345678-9abc-def0-1234-56789abcdef0"
index = "sprintly""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "server",
        "The HTTP Event Collector's base address (`https://splunk.example.com:8088`).",
    )
    .public(),
    OptionSpec::string("token", "The HEC token.").secret(),
    OptionSpec::string(
        "index",
        "The index to write to; unset, the token's default.",
    )
    .public()
    .optional(),
    OptionSpec::string("sourcetype", "The events' sourcetype.")
        .public()
        .default("_json"),
    OptionSpec::string("source", "The events' source.")
        .public()
        .default("lookout"),
];

impl Service for Splunk {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let event = job.event;
        let options = job.options;
        let payload: Value = serde_json::from_str(&event.forwarded())
            .map_err(|e| BuildError::Invalid(format!("the payload is not JSON: {e}")))?;
        let mut body = json!({
            "source": options.str("source").unwrap_or("lookout"),
            "sourcetype": options.str("sourcetype").unwrap_or("_json"),
            "event": payload,
            "fields": {"lookout_event": event.kind(), "product": event.product.name},
        });
        if let Some(index) = options.str("index") {
            body["index"] = index.into();
        }
        let base = options.str("server").unwrap_or_default();
        let url = endpoint(base, &["services", "collector", "event"])
            .map_err(|e| BuildError::Invalid(format!("server: {e}")))?;
        let token = options.str("token").unwrap_or_default();
        let request = HttpRequest::post(url)
            .json(body)
            .secret_header("Authorization", format!("Splunk {token}"));
        Ok(vec![request.into()])
    }
}

#[cfg(test)]
mod tests {
    use lookout::Outcome;
    use lookout_testkit::assert_failed;
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use serde_json::{Value, json};

    const TOKEN: &str = "5p1unk-hec-t0ken-5ecret-0123";

    fn options(url: &str) -> Value {
        json!({"server": url, "token": TOKEN, "index": "sprintly"})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_the_payload_as_a_hec_event() {
        let options = |server: &CaptureServer| options(&server.url());
        let item = fixture_json("item-updated");
        let (_, sent) = deliver_one("splunk", options, &item, TOKEN).await;
        assert_eq!(sent.path, "/services/collector/event");
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Splunk {TOKEN}").as_str())
        );
        let body = sent.json();
        let payload: Value = serde_json::from_str(&item).unwrap();
        assert_eq!(body["event"], payload);
        assert_eq!(body["index"], "sprintly");
        assert_eq!(body["sourcetype"], "_json");
        assert_eq!(body["source"], "lookout");
        assert_eq!(body["fields"]["lookout_event"], "Item.updated");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_disabled_or_unknown_token_disables_the_target() {
        let options = options("https://splunk.example.com:8088");
        let item = fixture_json("item");
        for (code, text) in [(1, "Token disabled"), (4, "Invalid token")] {
            let reply = Reply::status(403).body(json!({"text": text, "code": code}).to_string());
            let outcome = outcome_of_reply("splunk", options.clone(), &item, reply, TOKEN).await;
            assert!(
                matches!(&outcome, Outcome::Disabled { reason, status: 403 } if reason.contains("gone: Splunk: ")),
                "{code}: {outcome:?}"
            );
        }
        // A busy server is retried, not disabled.
        let busy = Reply::status(503).body(r#"{"text":"Server is busy","code":9}"#);
        let outcome = outcome_of_reply("splunk", options, &item, busy, TOKEN).await;
        assert_failed(&outcome, Some(503), "");
    }
}
