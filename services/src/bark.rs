//! The `bark` service (Bark). Its Markdown install docs are the doc comments on the
//! struct registered below; `lookout docs bark` shows them.

use lookout::prelude::*;
use lookout::text::budget::{fit, truncate};

lookout::service! {
    /// Bark
    ///
    /// Push notifications to an iPhone through [Bark](https://github.com/Finb/Bark), on
    /// the public `api.day.app` server or your own bark-server. Each new item, comment,
    /// block, favorite and deploy becomes a notification with a title
    /// (`Story #12: Title`), grouped under `Sprint.ly`, and, for items, a tap that opens
    /// the item in Sprint.ly.
    ///
    /// 1. Install Bark from the App Store and open it: it registers the phone with its
    ///    server and shows a URL such as `https://api.day.app/AbCdEf123456/…`.
    /// 2. Copy the part after the server's address (`AbCdEf123456`, the device key) into
    ///    `device_key`. It is a secret: anyone holding it can notify the phone.
    /// 3. If you run your own bark-server, set `server` to its address; otherwise leave it
    ///    at `https://api.day.app`.
    /// 4. Optionally set `level`: `active` (the default), `timeSensitive` (shows during
    ///    Focus), `passive` (no sound, no wake) or `critical` (sounds even when muted).
    /// 5. Set `markdown = true` to have Bark render the message as Markdown (bold field
    ///    names, links); by default it is plain text with links written out.
    ///
    /// Lookout uses Bark's JSON API (`POST {server}/push`; the API has no version in its
    /// path) with the device key in the body, never in the URL. Apple refuses
    /// notifications over 4 KB, so the title and message are cut to fit. When the server
    /// answers that it knows no device for the key (the app was removed or re-registered),
    /// Lookout disables the target instead of retrying.
    pub struct Bark;

    category: Push,
    // Bark forwards each notification to Apple's push service, whose payload is at most 4 KB.
    limits: Limits::cut(&[
        Limit::body(4_096, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"device_key = "AbCdEf1234567890xyzABC"
level = "active""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "server",
        "The Bark server: `https://api.day.app` or your own bark-server's address.",
    )
    .public()
    .default("https://api.day.app"),
    OptionSpec::string("device_key", "The device key the Bark app shows.").secret(),
    OptionSpec::choice(
        "level",
        &["active", "timeSensitive", "passive", "critical"],
        "How the notification interrupts (iOS interruption level).",
    )
    .public()
    .default("active"),
    OptionSpec::bool("markdown", "Send Markdown instead of plain text.")
        .public()
        .default("false"),
];

/// Apple refuses notification payloads over 4,096 bytes
/// (developer.apple.com/documentation/usernotifications/generating-a-remote-notification);
/// at up to 4 bytes a character, these leave room for the rest of the payload (`...`
/// included, when cut).
const TITLE_CHARS: usize = 100;
const BODY_CHARS: usize = 700;

impl Service for Bark {
    fn verdict(&self, status: u16, answer_body: &[u8]) -> Verdict {
        // bark-server answers `{"code":400,"message":"failed to get device token: …"}`
        // when it has no device under the key (route_push.go in Finb/bark-server).
        let answer: Value = serde_json::from_slice(answer_body).unwrap_or_default();
        let said = answer["message"].as_str().unwrap_or_default();
        if status == 400 && said.starts_with("failed to get device token") {
            return Verdict::Gone("Bark: the server knows no device with this key".into());
        }
        Verdict::ByStatus
    }

    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let mut body = json!({
            "device_key": options.str("device_key").unwrap_or_default(),
            "title": truncate(&message.title, TITLE_CHARS - 3),
            "level": options.str("level").unwrap_or("active"),
            "group": "Sprint.ly",
        });
        // Bark shows `markdown` instead of `body` when it is set.
        if options.bool("markdown") {
            let markdown = message.markdown(&Dialect::COMMONMARK);
            body["markdown"] = Value::from(fit(&markdown, BODY_CHARS));
        } else {
            body["body"] = Value::from(truncate(&message.plain(), BODY_CHARS - 3));
        }
        if let Some(url) = &message.url {
            body["url"] = Value::from(url.as_str());
        }
        let server = options.str("server").unwrap_or_default();
        let url =
            endpoint(server, &["push"]).map_err(|e| BuildError::Invalid(format!("server: {e}")))?;
        Ok(vec![HttpRequest::post(url).json(body).into()])
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const KEY: &str = "BarkDeviceKeySecret314";

    async fn deliver(extra: Value, event_json: &str) -> Value {
        let options = |server: &CaptureServer| {
            let mut options = json!({"server": server.url(), "device_key": KEY});
            options
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            options
        };
        let (_, sent) = deliver_one("bark", options, event_json, KEY).await;
        assert_eq!(sent.path, "/push", "the key stays out of the URL");
        sent.json()
    }

    #[tokio::test]
    async fn pushes_json_with_the_key_in_the_body() {
        let body = deliver(json!({"level": "timeSensitive"}), &fixture_json("item")).await;
        assert_eq!(body["device_key"], KEY);
        assert_eq!(body["level"], "timeSensitive");
        assert_eq!(body["group"], "Sprint.ly");
        assert_eq!(body["url"], "http://sprint.ly/i/1/116550/");
        assert!(body.get("markdown").is_none());
        let text = body["body"].as_str().unwrap();
        assert!(text.starts_with("Joe S. created the story #1212"), "{text}");
    }

    #[tokio::test]
    async fn markdown_replaces_the_body_when_asked() {
        let body = deliver(json!({"markdown": true}), &fixture_json("item-markup")).await;
        assert!(body.get("body").is_none());
        let markdown = body["markdown"].as_str().unwrap();
        assert!(markdown.contains(r"\*bold\*"), "{markdown}");
    }

    #[tokio::test]
    async fn long_text_is_cut_to_fit_a_notification() {
        let mut event: Value = serde_json::from_str(&fixture_json("item")).unwrap();
        event["attributes"]["title"] = Value::from("t".repeat(300));
        event["attributes"]["description"] = Value::from("d".repeat(3000));
        let body = deliver(json!({}), &event.to_string()).await;
        assert!(body["title"].as_str().unwrap().chars().count() <= super::TITLE_CHARS);
        assert!(body["body"].as_str().unwrap().chars().count() <= super::BODY_CHARS);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_device_key_disables_the_target() {
        let options = json!({"device_key": KEY});
        let item = fixture_json("item");
        let reply = Reply::status(400)
            .body(r#"{"code":400,"message":"failed to get device token: failed to get [x] device token from database","timestamp":1700000000}"#);
        let outcome = outcome_of_reply("bark", options.clone(), &item, reply, KEY).await;
        assert_disabled(&outcome, Some(400), "Bark: the server knows no device");
        let reply = Reply::status(400).body(r#"{"code":400,"message":"request bind failed"}"#);
        let outcome = outcome_of_reply("bark", options, &item, reply, KEY).await;
        assert_failed(&outcome, Some(400), "");
    }
}
