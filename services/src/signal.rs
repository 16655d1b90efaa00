//! The `signal` service (Signal, through signal-cli-rest-api). Its Markdown install docs
//! are the doc comments on the struct registered below; `lookout docs signal` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Signal
    ///
    /// Sends each new item, comment, block, favorite and deploy as a Signal message, to
    /// people or groups, through your own
    /// [signal-cli-rest-api](https://github.com/bbernhard/signal-cli-rest-api) server
    /// (Signal has no official bot API). Messages are plain text with links written out.
    ///
    /// 1. Run signal-cli-rest-api (e.g. `docker run -p 8080:8080 -v
    ///    $HOME/.local/share/signal-cli:/home/.local/share/signal-cli
    ///    bbernhard/signal-cli-rest-api`) where Lookout can reach it, and register or link
    ///    a phone number with it, as its README explains. Use a number of its own: every
    ///    message is sent from it.
    /// 2. Set `server` to the API's address (e.g. `http://signal-api:8080`). It has no
    ///    authentication of its own: keep it off the internet, or behind a proxy whose
    ///    credentials you may put in the URL (`https://user:password@host`). Whoever can
    ///    reach it can send as your number, so Lookout treats the address as a secret and
    ///    keeps it out of reports.
    /// 3. Set `number` to the registered sender number, in international format
    ///    (`+4915112345678`).
    /// 4. Set `recipients` to the phone numbers (international format) or group ids
    ///    (`group.…`, listed by `GET /v1/groups/{number}`) to send to. Numbers are personal
    ///    data: Lookout redacts them from reports like secrets.
    ///
    /// Lookout uses the API's send endpoint, version 2 (`POST {server}/v2/send`, JSON
    /// with `number`, `recipients` and `message`). The API answers `400` with the reason
    /// as text: when it says the sender number is not registered, Lookout disables the
    /// target instead of retrying; when it says Signal is rate limiting, Lookout tries
    /// again later.
    pub struct Signal;

    category: Push,
    limits: Limits::none(
        "signal-cli sends a long text as Signal's apps do (as an attachment), with no limit of its own.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"server = "http://signal-api.internal:8080"
number = "+4915112345678"
recipients = ["+4915187654321", "group.cmVhbGx5IGEgZ3JvdXAgaWQ="]"#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url("server", "The address of your signal-cli-rest-api.").secret(),
    OptionSpec::string("number", "The registered number messages are sent from.").secret(),
    OptionSpec::list("recipients", "Phone numbers or group ids to send to.").secret(),
];

impl Service for Signal {
    fn verdict(&self, status: u16, answer_body: &[u8]) -> Verdict {
        if status != 400 {
            return Verdict::ByStatus;
        }
        // Errors are `{"error": "<signal-cli's own words>"}` (src/api/api.go).
        let answer: Value = serde_json::from_slice(answer_body).unwrap_or_default();
        let said = answer["error"].as_str().unwrap_or_default();
        // signal-cli: "User +49… is not registered." The sender account is gone (or was
        // never set up); nothing sends until someone registers it again.
        if said.contains("is not registered") {
            return Verdict::Gone("Signal: the sender number is not registered".into());
        }
        // Signal's servers throttle busy senders; signal-cli reports it in the text.
        if said.to_ascii_lowercase().contains("rate limit") {
            return Verdict::Refused {
                reason: "Signal: rate limited".into(),
                retry: true,
            };
        }
        // Anything else, including "Unregistered user" for one recipient (the others may
        // have got it), is a plain failure, not retried.
        Verdict::ByStatus
    }

    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let body = json!({
            "number": options.str("number").unwrap_or_default(),
            "recipients": options.list("recipients"),
            "message": format!("{}\n\n{}", message.title, message.plain()),
        });
        let server = options.str("server").unwrap_or_default();
        let url = endpoint(server, &["v2", "send"])
            .map_err(|e| BuildError::Invalid(format!("server: {e}")))?;
        Ok(vec![HttpRequest::post(url).json(body).into()])
    }
}

#[cfg(test)]
mod tests {
    use lookout::Outcome;
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const SENDER: &str = "+4915100000042";
    const RECIPIENT: &str = "+4915100000077";

    fn options(server: &str) -> Value {
        json!({"server": server, "number": SENDER, "recipients": [RECIPIENT, "group.Z3JvdXA="]})
    }

    #[tokio::test]
    async fn sends_plain_text_to_every_recipient() {
        let options = |server: &CaptureServer| options(&server.url());
        let (report, sent) =
            deliver_one("signal", options, &fixture_json("item-markup"), SENDER).await;
        lookout_testkit::assert_hidden(&report, RECIPIENT);
        assert_eq!(sent.path, "/v2/send");
        let body = sent.json();
        assert_eq!(body["number"], SENDER);
        assert_eq!(body["recipients"], json!([RECIPIENT, "group.Z3JvdXA="]));
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with("Story #1212: <b>&\"x\"</b> *bold*"),
            "the title first, as typed: {message}"
        );
        assert!(
            message.contains("@everyone (http://sprint.ly/i/1/116550/)\n"),
            "{message}"
        );
    }

    /// How a `400` with this error text ends a delivery.
    async fn outcome_of_error(text: &str) -> Outcome {
        let reply = Reply::status(400).body(json!({"error": text}).to_string());
        let options = options("http://signal-api.internal:8080");
        outcome_of_reply("signal", options, &fixture_json("item"), reply, SENDER).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unregistered_sender_disables_the_target() {
        let outcome = outcome_of_error(&format!("User {SENDER} is not registered.\n")).await;
        assert_disabled(
            &outcome,
            Some(400),
            "Signal: the sender number is not registered",
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rate_limit_is_retried_and_other_errors_are_not() {
        let outcome = outcome_of_error("Failed to send message: Rate limit exceeded: 413").await;
        assert_failed(&outcome, Some(400), "refused: Signal: rate limited");
        let outcome = outcome_of_error("Failed to send (some) messages: Unregistered user").await;
        assert_failed(&outcome, Some(400), "Unregistered user");
    }

    #[test]
    fn a_rate_limit_asks_for_another_try() {
        use lookout::{Service as _, Verdict};
        let body = br#"{"error":"Failed to send message: Rate limit exceeded"}"#;
        assert!(matches!(
            super::Signal.verdict(400, body),
            Verdict::Refused { retry: true, .. }
        ));
        assert_eq!(super::Signal.verdict(500, body), Verdict::ByStatus);
    }
}
