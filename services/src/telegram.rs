//! The `telegram` service (Telegram). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs telegram` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Telegram
    ///
    /// Posts each new item, comment, block, favorite and deploy to a Telegram chat, group
    /// or channel through a bot, using the Bot API's `sendMessage` method with
    /// `parse_mode: HTML` (bold field names, links, the comment or description quoted).
    ///
    /// 1. In Telegram, talk to **@BotFather**: send `/newbot`, choose a name and a
    ///    username. BotFather answers with the bot's token (`123456789:AA…`); put it in
    ///    `bot_token`. Anyone with the token controls the bot: keep it in this config only.
    /// 2. Add the bot to the group or channel (in a channel, as an administrator allowed
    ///    to post), or start a private chat with it.
    /// 3. Find the chat's ID: a public channel can use its `@channelusername`; otherwise
    ///    send a message in the chat and open
    ///    `https://api.telegram.org/bot<token>/getUpdates` in a browser, where
    ///    `"chat":{"id":…}` is the ID (groups and channels have negative IDs such as
    ///    `-1001234567890`). Put it in `chat_id`.
    /// 4. Optionally set `silent = true` to deliver without a notification sound.
    ///
    /// `api_url` only needs changing for a self-hosted Bot API server. The token is part of
    /// the request's URL (`/bot<token>/sendMessage`); reports show it as `[redacted]`.
    pub struct Telegram;
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string(
        "bot_token",
        "The bot's token from @BotFather (`123456789:AA…`).",
    )
    .secret(),
    OptionSpec::string(
        "chat_id",
        "The chat's ID (`-1001234567890`) or a public channel's `@username`.",
    )
    .public(),
    OptionSpec::bool("silent", "Send without a notification sound.")
        .public()
        .default("false"),
    OptionSpec::url(
        "api_url",
        "The Bot API server (change only for a self-hosted one).",
    )
    .public()
    .default("https://api.telegram.org"),
];

impl Service for Telegram {
    fn rate_limit(&self) -> Option<RateLimit> {
        // Telegram asks bots for at most about one message per second per chat.
        Some(RateLimit::CHAT_WEBHOOK)
    }

    fn schema(&self) -> Schema {
        Schema::new(OPTIONS)
    }

    fn example(&self) -> &'static str {
        r#"bot_token = "123456789:AAFakeTokenForTheDocsOnly_abcdefghij"
chat_id = "-1001234567890""#
    }

    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = Message::from_event(job.event)?;
        let options = job.options;
        let url = format!(
            "{}/bot{}/sendMessage",
            options
                .str("api_url")
                .unwrap_or_default()
                .trim_end_matches('/'),
            options.str("bot_token").unwrap_or_default(),
        );
        // The URL holds the token: its parse error must not be shown with it.
        let url = url
            .parse()
            .map_err(|e| BuildError::Invalid(format!("api_url or bot_token: {e}")))?;
        let body = json!({
            "chat_id": options.str("chat_id").unwrap_or_default(),
            "text": message.telegram_html(),
            "parse_mode": "HTML",
            // The message links to the item already; a preview card would repeat it.
            "link_preview_options": {"is_disabled": true},
            "disable_notification": options.bool("silent"),
        });
        Ok(vec![HttpRequest::post(url).json(body).into()])
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{
        CaptureServer, Reply, assert_hidden, deliver_one, dispatch_one, fixture_json,
    };
    use serde_json::{Value, json};

    const TOKEN: &str = "987654:AAsecret-Token_xyz";

    fn options(server: &CaptureServer) -> Value {
        json!({
            "bot_token": TOKEN,
            "chat_id": "-100123",
            "api_url": server.url(),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_telegram_html_and_hides_the_token() {
        let (report, request) =
            deliver_one("telegram", options, &fixture_json("item-markup"), TOKEN).await;
        assert_eq!(request.method, "POST");
        // The token really went out, in the path…
        assert_eq!(request.path, format!("/bot{TOKEN}/sendMessage"));
        let body = request.json();
        assert_eq!(body["chat_id"], "-100123");
        assert_eq!(body["parse_mode"], "HTML");
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;"),
            "{text}"
        );
        for tag in ["<p>", "<br", "<ul>", "<li>"] {
            assert!(!text.contains(tag), "Telegram rejects {tag}: {text}");
        }
        assert!(
            text.contains("<a href=\"http://sprint.ly/i/1/116550/\">"),
            "{text}"
        );

        // …and is redacted from the report (`deliver_one` checked it shows nowhere).
        let shown = lookout_testkit::shown(&report);
        assert!(shown.contains("/bot[redacted]/sendMessage"), "{shown}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_echoing_the_token_is_redacted() {
        let server = CaptureServer::start();
        server.script(
            "/bot",
            [Reply::status(401).body(format!(
                r#"{{"ok":false,"error_code":401,"description":"Unauthorized: {TOKEN}"}}"#
            ))],
        );
        let report = dispatch_one("telegram", options(&server), &fixture_json("comment")).await;
        assert!(report.has_failures(), "{report:?}");
        assert_hidden(&report, TOKEN);
        let shown = format!("{report:?}");
        assert!(shown.contains("401"), "{shown}");
    }
}
