//! The `gotify` service (Gotify). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs gotify` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Gotify
    ///
    /// Push notifications through your own [Gotify](https://gotify.net) server to its
    /// web app and Android app. Each new item, comment, block, favorite and deploy
    /// becomes a message with a title (`Story #12: Title`) and, for items, a tap that
    /// opens the item in Sprint.ly.
    ///
    /// 1. In Gotify's web app, open **Apps → Create Application**, name it (e.g.
    ///    `Sprint.ly`) and create it.
    /// 2. Copy the application's **Token** into `token`. It is a secret: anyone holding
    ///    it can post to that application. Lookout sends it in the `X-Gotify-Key`
    ///    header, never in the URL.
    /// 3. Set `server` to your Gotify server's address (e.g. `https://push.example.com`,
    ///    or with the path it is served under).
    /// 4. Optionally set `priority`, from 0 to 10 (Gotify's Android app is silent for 0,
    ///    notifies from 1, and pops up from 8); without it the application's default
    ///    priority applies.
    /// 5. Set `markdown = true` to have messages rendered as Markdown (links, bold field
    ///    names, quotes). By default they are plain text with links written out, as
    ///    Gotify advises for text that comes from elsewhere.
    ///
    /// Lookout posts to Gotify's message API (`POST {server}/message`, server 2.x; the
    /// API has no version in its path) with a JSON body: `title`, `message`, `priority`
    /// and `extras` (`client::display` for Markdown, `client::notification` for the
    /// link). Gotify answers `401` when the token is unknown (the application was
    /// deleted): Lookout then disables the target instead of retrying.
    pub struct Gotify;

    category: Push,
    // Gotify answers 401 to every token it does not know: the application (or its
    // token) was deleted (https://github.com/gotify/server, auth/authentication.go).
    answers: Answers::status("Gotify", &[
        Means::gone(&["401"], "the application token is unknown"),
    ]),
    limits: Limits::none(
        "a Gotify server (your own) sets no size limit on messages.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"server = "https://push.example.com"
token = "AbCdEf0123456_z"
priority = 5"#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url("server", "Your Gotify server's address.").public(),
    OptionSpec::string(
        "token",
        "The application token from Gotify's **Apps** page.",
    )
    .secret(),
    OptionSpec::integer(
        "priority",
        "Message priority, 0 to 10 (the application's default when unset).",
    )
    .public()
    .range(0, 10)
    .optional(),
    OptionSpec::bool(
        "markdown",
        "Send Markdown (rendered by the web and Android apps) instead of plain text.",
    )
    .public()
    .default("false"),
];

impl Service for Gotify {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let markdown = options.bool("markdown");
        let mut body = json!({
            "title": message.title,
            "message": if markdown { message.markdown(&Dialect::COMMONMARK) } else { message.plain() },
            "extras": extras(&message, markdown),
        });
        if let Some(priority) = options.integer("priority") {
            body["priority"] = Value::from(priority);
        }
        let server = options.str("server").unwrap_or_default();
        let url = endpoint(server, &["message"])
            .map_err(|e| BuildError::Invalid(format!("server: {e}")))?;
        let token = options.str("token").unwrap_or_default();
        Ok(vec![
            HttpRequest::post(url)
                .secret_header("X-Gotify-Key", token)
                .json(body)
                .into(),
        ])
    }
}

/// Gotify's message extras (https://gotify.net/docs/msgextras): how clients display the
/// text, and where a tap on the notification leads.
fn extras(message: &Message, markdown: bool) -> Value {
    let content_type = if markdown {
        "text/markdown"
    } else {
        "text/plain"
    };
    let mut extras = json!({"client::display": {"contentType": content_type}});
    if let Some(url) = &message.url {
        extras["client::notification"] = json!({"click": {"url": url}});
    }
    extras
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, MARKUP_TITLE, Reply, deliver_one, fixture_json};
    use lookout_testkit::{assert_disabled, assert_failed};
    use serde_json::{Value, json};

    const TOKEN: &str = "AgotifyTokenSecret42";

    fn options(server: &str, extra: Value) -> Value {
        let mut options = json!({"server": format!("{server}/gotify"), "token": TOKEN});
        options
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        options
    }

    async fn deliver(extra: Value, fixture: &str) -> lookout_testkit::Captured {
        let options = |server: &CaptureServer| options(&server.url(), extra);
        let (_, sent) = deliver_one("gotify", options, &fixture_json(fixture), TOKEN).await;
        sent
    }

    #[tokio::test]
    async fn posts_plain_text_with_the_token_in_a_header() {
        let sent = deliver(json!({"priority": 8}), "item-markup").await;
        assert_eq!(sent.method, "POST");
        assert_eq!(
            sent.path, "/gotify/message",
            "the token stays out of the URL"
        );
        assert_eq!(sent.header("x-gotify-key"), Some(TOKEN));
        let body = sent.json();
        assert_eq!(body["priority"], 8);
        assert_eq!(body["title"], format!("Story #1212: {MARKUP_TITLE}"));
        assert_eq!(
            body["extras"],
            json!({
                "client::display": {"contentType": "text/plain"},
                "client::notification": {"click": {"url": "http://sprint.ly/i/1/116550/"}},
            })
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("\nTags: <script>, a&b"), "{message}");
    }

    #[tokio::test]
    async fn markdown_when_asked_and_the_apps_priority_when_unset() {
        let sent = deliver(json!({"markdown": true}), "item-markup").await;
        let body = sent.json();
        assert!(body.get("priority").is_none());
        assert_eq!(
            body["extras"]["client::display"]["contentType"],
            "text/markdown"
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(r"\*bold\* \_under\_"), "{message}");
    }

    #[test]
    fn priority_must_be_0_to_10() {
        let options = options("https://push.example.com", json!({"priority": 11}));
        let problems = lookout::Instance::new("gotify", "gotify", options.as_object().unwrap())
            .expect_err("priority 11 is refused");
        assert!(format!("{problems:?}").contains("priority"), "{problems:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_token_disables_the_target() {
        use lookout_testkit::outcome_of_reply;
        let options = options("https://push.example.com", json!({}));
        let item = fixture_json("item");
        let reply = Reply::status(401).body(
            r#"{"error":"Unauthorized","errorCode":401,"errorDescription":"you need to provide a valid access token or user credentials to access this api"}"#,
        );
        let outcome = outcome_of_reply("gotify", options.clone(), &item, reply, TOKEN).await;
        assert_disabled(
            &outcome,
            Some(401),
            "Gotify: the application token is unknown",
        );
        // A server error is retried, not a reason to give up on the target.
        let outcome = outcome_of_reply("gotify", options, &item, Reply::status(500), TOKEN).await;
        assert_failed(&outcome, Some(500), "");
    }
}
