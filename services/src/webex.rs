//! The `webex` service (Webex). Its Markdown install docs are the doc comments on the
//! struct registered below; `lookout docs webex` shows them.

use lookout::prelude::*;
use lookout::text::budget::fit_bytes;

lookout::service! {
    /// Webex
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a Webex space as a
    /// bot, through the Webex Messages API (`POST https://webexapis.com/v1/messages`,
    /// API v1): what happened with a link to the item, the description or comment as a
    /// quote, and the item's fields, in Webex Markdown with a plain-text fallback.
    ///
    /// 1. Create a bot at <https://developer.webex.com/my-apps/new/bot>: give it a name,
    ///    a username and an icon, and select **Add Bot**.
    /// 2. Copy the bot's access token (shown once) into `token`. It is a secret: it is
    ///    sent as `Authorization: Bearer …` and never shown in reports.
    /// 3. In Webex, add the bot to the space the messages should go to (**People → Add
    ///    people**, then the bot's username).
    /// 4. Find the space's id: call `GET https://webexapis.com/v1/rooms` with the bot's
    ///    token (for example on the API reference page, **Try it**), or in the Webex
    ///    app use **Copy space link** and take the id from it. Put it in `room_id`.
    ///
    /// Webex refuses text over 7439 bytes, so a longer message is cut to fit. If Webex
    /// answers `401` (the token is revoked) or `404` (the space is gone, or the bot was
    /// removed from it), Lookout stops sending to it until you fix the configuration.
    pub struct Webex;

    category: Chat,
    // Webex's documented 4xx answers (developer.webex.com/docs/api/basics#api-errors):
    // 401 is a bad or revoked token; for a message, 404 means the space does not
    // exist or the bot is not in it. Neither gets better by retrying.
    answers: Answers::status("Webex", &[
        Means::gone(&["401"], "the bot's access token is invalid or revoked"),
        Means::gone(&["404"], "the space does not exist or the bot is not a member of it"),
    ]),
    // developer.webex.com: a message's text or markdown is at most 7,439 bytes.
    limits: Limits::cut(&[
        Limit::field("/markdown", 7_439, Unit::Bytes),
        Limit::field("/text", 7_439, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"token = "ZjExample-bot-access-token_0123456789"
room_id = "Y2lzY29zcGFyazovL3VzL1JPT00vZXhhbXBsZS1zcGFjZQ""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("token", "The bot's access token.").secret(),
    OptionSpec::string(
        "room_id",
        "The id of the space to post to (the bot must be a member).",
    )
    .public(),
];

/// Webex's messages endpoint (developer.webex.com/docs/api/v1/messages/create-a-message).
const MESSAGES_URL: &str = "https://webexapis.com/v1/messages";

/// Webex refuses `text` or `markdown` over 7439 bytes (same page).
const TEXT_BYTES: usize = 7439;

impl Service for Webex {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let body = json!({
            "roomId": job.options.str("room_id").unwrap_or_default(),
            "markdown": fit_bytes(&message.markdown(&Dialect::COMMONMARK), TEXT_BYTES),
            "text": fit_bytes(&message.plain(), TEXT_BYTES),
        });
        let url = MESSAGES_URL.parse().expect("a valid URL");
        let token = job.options.str("token").unwrap_or_default();
        Ok(vec![HttpRequest::post(url).json(body).bearer(token).into()])
    }
}

#[cfg(test)]
mod tests {
    use lookout::Outcome;
    use lookout_testkit::{CaptureServer, Reply, deliver_one, fixture_json, outcome_of_reply};
    use serde_json::{Value, json};

    const TOKEN: &str = "WebexBotTokenSecret_0123456789";
    const ROOM: &str = "Y2lzY29zcGFyazovL3VzL1JPT00vcm9vbQ";

    fn options() -> Value {
        json!({"token": TOKEN, "room_id": ROOM})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_markdown_to_the_messages_api_as_the_bot() {
        let options = |_: &CaptureServer| options();
        let (_, sent) = deliver_one("webex", options, &fixture_json("item-markup"), TOKEN).await;
        assert_eq!(sent.path, "/v1/messages");
        assert_eq!(sent.header("host"), Some("webexapis.com"));
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let body = sent.json();
        assert_eq!(body["roomId"], ROOM);
        let markdown = body["markdown"].as_str().unwrap();
        assert!(
            markdown.contains(r#"&lt;b&gt;&amp;"x"&lt;/b&gt; \*bold\*"#),
            "{markdown}"
        );
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains("<b>&\"x\"</b> *bold*")
        );
    }

    #[test]
    fn long_messages_are_cut_to_webex_byte_limit() {
        let mut deploy: Value = serde_json::from_str(&fixture_json("deploy")).unwrap();
        let item = deploy["attributes"]["items"][0].clone();
        let mut many = item.clone();
        many["title"] = "長いタイトル".repeat(20).into();
        deploy["attributes"]["items"] = vec![many; 200].into();
        let event = lookout::Event::from_value(deploy).unwrap();
        let instance =
            lookout::Instance::new("webex", "webex", options().as_object().unwrap()).unwrap();
        let preview = lookout::dispatch::preview_one(&event, &instance);
        let body = &preview.requests[0].body;
        for field in ["markdown", "text"] {
            let text = body[field].as_str().unwrap();
            assert!(text.len() <= super::TEXT_BYTES, "{field}: {}", text.len());
            assert!(
                text.len() > super::TEXT_BYTES - 100,
                "{field}: {}",
                text.len()
            );
            assert!(text.ends_with('…'), "{field}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_token_or_a_lost_space_disables_the_target() {
        let item = fixture_json("item");
        for status in [401, 404] {
            let reply = Reply::status(status).body(r#"{"message":"x","trackingId":"t"}"#);
            let outcome = outcome_of_reply("webex", options(), &item, reply, TOKEN).await;
            let Outcome::Disabled { reason, .. } = outcome else {
                panic!("{status}: not disabled: {outcome:?}");
            };
            assert!(reason.starts_with(&format!("HTTP {status}: gone: Webex: ")));
        }
        let reply = Reply::status(400).body(r#"{"message":"bad"}"#);
        let outcome = outcome_of_reply("webex", options(), &item, reply, TOKEN).await;
        assert!(matches!(
            outcome,
            Outcome::Failed {
                status: Some(400),
                ..
            }
        ));
    }
}
