//! The `errbot` service (Errbot). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs errbot` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Errbot
    ///
    /// Hands every event to your [Errbot](https://errbot.readthedocs.io/) chatbot through
    /// its built-in web server: a plugin of yours receives the Sprint.ly payload (the four
    /// keys `action`, `product`, `attributes` and `model`) already decoded, and decides
    /// what to say and where. Every event is sent, whatever its model or action; filter
    /// in the plugin.
    ///
    /// 1. Configure Errbot's web server. In a chat with the bot, as an admin, send
    ///    `!plugin config Webserver {'HOST': '127.0.0.1', 'PORT': 3141, 'SSL': None}`.
    ///    `PORT` must be a number, not a string, or the server stays off.
    /// 2. Do not expose Errbot's web server directly: Errbot's own documentation advises
    ///    putting it behind a web server such as nginx or Apache. With nginx, in the
    ///    `server` block that serves your bot's HTTPS address:
    ///
    ///    ```nginx
    ///    location /sprintly {
    ///        proxy_pass http://127.0.0.1:3141;
    ///    }
    ///    ```
    ///
    /// 3. Add a plugin with a `@webhook` handler. A plugin is a folder holding a
    ///    `sprintly.plug` file (`[Core]` with `Name = Sprintly` and `Module = sprintly`,
    ///    `[Python]` with `Version = 3`) and this `sprintly.py`:
    ///
    ///    ```python
    ///    import hmac
    ///
    ///    from flask import abort, request
    ///    from errbot import BotPlugin, webhook
    ///
    ///    TOKEN = "the same value as Lookout's `token`"
    ///    ROOM = "#dev"
    ///
    ///    class Sprintly(BotPlugin):
    ///        def announce(self, event):
    ///            sent = request.headers.get("X-Lookout-Token", "")
    ///            if not hmac.compare_digest(sent, TOKEN):
    ///                abort(403)
    ///            if event["action"] == "created":
    ///                title = event["attributes"].get("title", "")
    ///                self.send(self.build_identifier(ROOM),
    ///                          f"New {event['model']} in {event['product']['name']}: {title}")
    ///
    ///        @webhook("/sprintly")  # format = "json": the body is decoded for you
    ///        def sprintly(self, event):
    ///            self.announce(event)
    ///
    ///        @webhook("/sprintly/form", form_param="payload")  # format = "form"
    ///        def sprintly_form(self, event):
    ///            self.announce(event)
    ///    ```
    ///
    ///    Put the folder in a directory named by `BOT_EXTRA_PLUGIN_DIR` in Errbot's
    ///    `config.py` and restart the bot (or `!plugin reload Sprintly`).
    /// 4. Check it from the chat: `!webstatus` lists the endpoints the web server serves
    ///    (`/sprintly` should be there), and
    ///    `!webhook test /sprintly {"action": "created", "model": "Item", …}` calls your
    ///    handler without going through the network. That call carries no token, so with
    ///    the check above it answers 403: proof that the check works.
    /// 5. In Lookout, set `url` to the public address of the handler, e.g.
    ///    `https://bot.example.com/sprintly`. Leave `format` at `json` (the body is the
    ///    payload, byte for byte, as `application/json`), or set it to `form` to send
    ///    `payload=<json>` form-encoded, the GitHub-style form Errbot reads with
    ///    `form_param="payload"`; then point `url` at the form handler.
    /// 6. Set `token` to a long random string (e.g. `openssl rand -hex 32`) and check it
    ///    in the plugin, as above: Lookout sends it in the `X-Lookout-Token` header, so
    ///    the handler can refuse requests that do not come from Lookout.
    ///
    /// Errbot answers `200` when the handler returns; Lookout counts anything else as a
    /// failure. The URL and token are secrets: reports show only the URL's host.
    pub struct Errbot;

    category: Webhook,
    // Errbot gets the payload itself, not a message: the plugin decides what matters.
    events: &["*"],
    limits: Limits::none(
        "the payload goes as it is to your own Errbot, which sets no size limit.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://bot.example.com/sprintly"
format = "json"
token = "4f9c1d7e2b8a6035c1e9f7d2a4b6c8e0""#,
}

/// The header the shared token travels in (the plugin compares it with its own copy).
const TOKEN_HEADER: &str = "X-Lookout-Token";

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "url",
        "The address of your plugin's webhook, e.g. `https://bot.example.com/sprintly`.",
    )
    .secret(),
    OptionSpec::choice(
        "format",
        &["json", "form"],
        "`json`: the payload as a JSON body; `form`: form-encoded `payload=<json>` \
         (read with `form_param=\"payload\"`).",
    )
    .public()
    .default("json"),
    OptionSpec::string(
        "token",
        "A shared secret sent in the `X-Lookout-Token` header for the plugin to check.",
    )
    .secret()
    .optional(),
];

impl Service for Errbot {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let url = job.url("url")?;
        // The payload is forwarded exactly as the product sent it, in either format.
        let payload = job.event.forwarded();
        let mut request = match job.options.str("format") {
            Some("form") => HttpRequest::post(url).form([("payload", &*payload)]),
            _ => HttpRequest::post(url).raw_json(payload),
        };
        if let Some(token) = job.options.str("token") {
            request = request.secret_header(TOKEN_HEADER, token);
        }
        Ok(vec![request.into()])
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, Captured, deliver_one, fixture_json};
    use serde_json::json;

    const TOKEN: &str = "t0kenErrbotSecret42";

    /// Delivers one fixture (checking the token shows nowhere in the report); returns the
    /// request and the report as shown.
    async fn deliver(format: &str, fixture: &str) -> (Captured, String) {
        let options = |server: &CaptureServer| {
            json!({
                "url": format!("{}/sprintly", server.url()),
                "format": format,
                "token": TOKEN,
            })
        };
        let (report, sent) = deliver_one("errbot", options, fixture, TOKEN).await;
        (sent, lookout_testkit::shown(&report))
    }

    #[tokio::test]
    async fn json_forwards_the_payload_byte_for_byte() {
        let fixture = fixture_json("item-markup");
        let (sent, report) = deliver("json", &fixture).await;
        assert_eq!(sent.path, "/sprintly");
        assert_eq!(sent.header("content-type"), Some("application/json"));
        assert_eq!(sent.text(), fixture);
        assert_eq!(sent.header("x-lookout-token"), Some(TOKEN));
        assert!(!report.contains("/sprintly"), "the URL is secret: {report}");
    }

    #[tokio::test]
    async fn form_carries_the_payload_field() {
        let fixture = fixture_json("deploy");
        let (sent, _) = deliver("form", &fixture).await;
        assert_eq!(
            sent.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(sent.form().len(), 1, "only `payload`: {:?}", sent.form());
        assert_eq!(
            sent.form_field("payload").as_deref(),
            Some(fixture.as_str())
        );
        assert_eq!(sent.header("x-lookout-token"), Some(TOKEN));
    }

    #[tokio::test]
    async fn every_event_is_sent() {
        // Even a model no message exists for: the plugin decides.
        let fixture = fixture_json("unknown-model");
        let (sent, _) = deliver("json", &fixture).await;
        assert_eq!(sent.text(), fixture);
    }
}
