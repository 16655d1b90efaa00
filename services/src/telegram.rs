//! The `telegram` service (Telegram). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs telegram` shows them.

use lookout::prelude::*;
use lookout::text::budget::{fit, fit_lines};

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
    ///
    /// Telegram refuses a message over 4096 characters, so a long deploy lists as many
    /// items as fit and then says how many more there are. When Telegram asks a bot to
    /// slow down (`parameters.retry_after` in a `429`), Lookout waits that long.
    pub struct Telegram;

    category: Chat,
    // Telegram asks bots for at most about one message per second per chat.
    rate_limit: RateLimit::CHAT_WEBHOOK,
    wait: Wait::BodySeconds("/parameters/retry_after"),
    // core.telegram.org/bots/api#sendmessage: 4,096 characters after entities are parsed;
    // counted before, which is stricter.
    limits: Limits::cut(&[
        Limit::field("/text", 4_096, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"bot_token = "123456789:AAFakeTokenForTheDocsOnly_abcdefghij"
chat_id = "-1001234567890""#,
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
    /// The Bot API says in `description` when a chat is out of reach for good: the bot
    /// was blocked or removed, the chat is gone
    /// (https://core.telegram.org/api/errors).
    fn verdict(&self, status: u16, answer_body: &[u8]) -> Verdict {
        let answer = serde_json::from_slice::<Value>(answer_body).unwrap_or_default();
        let description = answer["description"].as_str().unwrap_or_default();
        const GONE: [&str; 5] = [
            "bot was blocked by the user",
            "bot was kicked",
            "user is deactivated",
            "chat not found",
            "group chat was deleted",
        ];
        let gone =
            matches!(status, 400 | 403) && GONE.iter().any(|words| description.contains(words));
        if gone {
            return Verdict::Gone(format!("Telegram: {description}"));
        }
        Verdict::ByStatus
    }

    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
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
            "text": telegram_html(&message),
            "parse_mode": "HTML",
            // The message links to the item already; a preview card would repeat it.
            "link_preview_options": {"is_disabled": true},
            "disable_notification": options.bool("silent"),
        });
        Ok(vec![HttpRequest::post(url).json(body).into()])
    }
}

/// Telegram's limit for a message's text, "1-4096 characters after entities parsing"
/// (core.telegram.org/bots/api#sendmessage); a longer one is refused. Counting the
/// markup itself, as the budget does, counts more than Telegram does.
const MESSAGE_CHARS: usize = 4096;

/// The whole message in the HTML subset Telegram accepts (`parse_mode: HTML`): only
/// `b`, `i`, `u`, `s`, `a`, `code`, `pre` and `blockquote` are allowed there, and line
/// breaks are plain newlines, so paragraphs and lists are written with `\n` and `•`.
/// User text is escaped as HTML (Telegram decodes `&lt;`, `&gt;`, `&amp;`, `&quot;` and
/// numeric entities such as `&#39;`). The headline, quote and fields get at most a
/// quarter of [`MESSAGE_CHARS`] each, the list what is left.
fn telegram_html(message: &Message) -> String {
    let part = MESSAGE_CHARS / 4;
    let mut parts = vec![fit(&Dialect::HTML.rich(&message.headline), part)];
    if let Some(quote) = &message.quote {
        let quote = fit(&escape::html(quote), part);
        parts.push(format!("<blockquote>{quote}</blockquote>"));
    }
    let fields = fit(&message.html_fields().join("\n"), part);
    if !message.list.is_empty() {
        let used: usize = parts
            .iter()
            .chain([&fields])
            .map(|p| p.chars().count() + 2)
            .sum();
        parts.push(fit_lines(&message.html_bullets(), MESSAGE_CHARS - used));
    }
    if !fields.is_empty() {
        parts.push(fields);
    }
    parts.join("\n\n")
}

#[cfg(test)]
mod tests {
    use lookout_testkit::assert_failed;
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
    async fn a_blocked_bot_or_a_missing_chat_disables_the_target() {
        use lookout::Outcome;
        use lookout_testkit::outcome_of_reply;
        let options = json!({"bot_token": TOKEN, "chat_id": "-100123"});
        let item = fixture_json("item");
        for (status, description) in [
            (403, "Forbidden: bot was blocked by the user"),
            (400, "Bad Request: chat not found"),
        ] {
            let body = json!({"ok": false, "error_code": status, "description": description});
            let reply = Reply::status(status).body(body.to_string());
            let outcome = outcome_of_reply("telegram", options.clone(), &item, reply, TOKEN).await;
            let Outcome::Disabled { reason, .. } = outcome else {
                panic!("{description}: not disabled: {outcome:?}");
            };
            assert!(
                reason.contains(&format!("Telegram: {description}")),
                "{reason}"
            );
        }
        let body = json!({"ok": false, "error_code": 400, "description": "Bad Request: message is too long"});
        let reply = Reply::status(400).body(body.to_string());
        let outcome = outcome_of_reply("telegram", options, &item, reply, TOKEN).await;
        assert_failed(&outcome, None, "");
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

    #[test]
    fn telegram_html_uses_only_telegram_tags() {
        use lookout::text::{Field, Rich, wording::DEFAULT_COLOR};
        let message = lookout::Message {
            summary: String::new(),
            headline: Rich::text("<b>&\"x\" ").push_link("#1", "http://x/1"),
            title: String::new(),
            url: None,
            actor: String::new(),
            quote: Some("line <1>\nline 2".into()),
            fields: vec![Field {
                name: "Status",
                value: Rich::text("Done"),
            }],
            list: vec![Rich::text("one"), Rich::text("two")],
            color: DEFAULT_COLOR,
        };
        assert_eq!(
            super::telegram_html(&message),
            "&lt;b&gt;&amp;&quot;x&quot; <a href=\"http://x/1\">#1</a>\n\n\
             <blockquote>line &lt;1&gt;\nline 2</blockquote>\n\n\
             • one\n• two\n\n\
             <b>Status:</b> Done"
        );
    }

    #[test]
    fn a_200_item_deploy_stays_under_telegrams_limit() {
        let mut event: Value = serde_json::from_str(&fixture_json("deploy")).unwrap();
        let item = event["attributes"]["items"][0].clone();
        event["attributes"]["items"] = Value::Array(vec![item; 200]);
        let event = lookout::Event::parse(&event.to_string()).unwrap();
        let message = lookout::Message::from_event(&event).unwrap();
        let text = super::telegram_html(&message);
        assert!(
            text.chars().count() <= super::MESSAGE_CHARS,
            "{}",
            text.len()
        );
        // The list ends with how many items did not fit; the fields follow it.
        let list = text.split("\n\n").nth(1).unwrap();
        let shown = list.lines().filter(|l| l.starts_with("• ")).count();
        assert!(shown > 10, "{shown}");
        assert!(
            list.ends_with(&format!("\n… and {} more", 200 - shown)),
            "{list}"
        );
        assert!(text.ends_with("</a>"), "the Product field stays: {text}");
    }

    #[test]
    fn a_429_asks_for_its_wait_in_seconds() {
        use lookout::Registered as _;
        use lookout::delivery::Answer;
        let wait = |body: &[u8]| {
            super::Telegram
                .registration()
                .wait_in(&Answer::new(429, body))
        };
        let body = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}"#;
        assert_eq!(wait(body), Some(std::time::Duration::from_secs(5)));
        assert_eq!(wait(br#"{"retry_after":5}"#), None);
    }
}
