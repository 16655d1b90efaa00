//! The `ntfy` service (ntfy). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs ntfy` shows them.

use lookout::prelude::*;

lookout::service! {
    /// ntfy
    ///
    /// Push notifications to your phone or desktop through [ntfy](https://ntfy.sh), on
    /// the public ntfy.sh server or your own. Each new item, comment, block, favorite and
    /// deploy becomes a notification with a title (`Story #12: Title`), an emoji tag for
    /// the kind of event, the product's name as a tag, and, for items, a tap that opens
    /// the item in Sprint.ly.
    ///
    /// 1. Install the ntfy app (Android, iOS) or open the web app, and subscribe to a
    ///    topic. On ntfy.sh anyone who knows a topic's name can read it and post to it,
    ///    so pick a name nobody will guess (e.g. `sprintly-` followed by
    ///    `openssl rand -hex 8`); Lookout treats the topic as a secret.
    /// 2. Set `topic` to that name. Leave `server` at `https://ntfy.sh`, or set it to your
    ///    own server's address.
    /// 3. If the topic is protected (your own server with access control, or a reserved
    ///    topic on ntfy.sh), create an access token in the web app under
    ///    **Account → Access tokens** (or with `ntfy token add` on your server) and put
    ///    it in `token`. It is sent as `Authorization: Bearer …`.
    /// 4. Optionally set `priority` (`min`, `low`, `default`, `high`, `max`).
    /// 5. Set `markdown = true` if you read notifications in ntfy's web app: ntfy renders
    ///    Markdown (links, bold field names, quotes) there only. The phone apps show
    ///    Markdown as typed, so by default messages are plain text with links written out.
    ///
    /// Lookout publishes with ntfy's JSON API: one `POST` to the server's root URL with
    /// the topic, title, message, tags, priority and click link in the body.
    pub struct Ntfy;

    category: Push,
    // docs.ntfy.sh/publish/#limitations: a longer message becomes an attachment.
    limits: Limits::cut(&[
        Limit::field("/message", 4_096, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"topic = "sprintly-5e0c7a91d24b38f6"
priority = "default""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "server",
        "The ntfy server: `https://ntfy.sh` or the address of your own.",
    )
    .public()
    .default("https://ntfy.sh"),
    OptionSpec::string(
        "topic",
        "The topic to publish to. On public servers it works as a password: keep it unguessable.",
    )
    .secret(),
    OptionSpec::string("token", "An access token (`tk_…`) for protected topics.")
        .secret()
        .optional(),
    OptionSpec::choice(
        "priority",
        &["min", "low", "default", "high", "max"],
        "How insistently phones notify.",
    )
    .public()
    .default("default"),
    OptionSpec::bool(
        "markdown",
        "Send Markdown (rendered by ntfy's web app only; the phone apps show it as typed).",
    )
    .public()
    .default("false"),
];

impl Service for Ntfy {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let markdown = options.bool("markdown");
        let mut body = json!({
            "topic": options.str("topic").unwrap_or_default(),
            "title": message.title,
            "message": if markdown { message.markdown(&Dialect::COMMONMARK) } else { message.plain() },
            "tags": [emoji_tag(&job.event.model), job.event.product.name],
            "priority": priority(options.str("priority")),
        });
        if markdown {
            body["markdown"] = Value::Bool(true);
        }
        if let Some(url) = &message.url {
            body["click"] = Value::from(url.as_str());
        }
        let url = root_url(options.str("server"))
            .parse()
            .map_err(|e| BuildError::Invalid(format!("server: {e}")))?;
        let mut request = HttpRequest::post(url).json(body);
        if let Some(token) = options.str("token") {
            request = request.bearer(token);
        }
        Ok(vec![request.into()])
    }
}

/// JSON messages go to the server's root URL, not the topic's (the topic is in the body).
fn root_url(server: Option<&str>) -> String {
    let server = server.unwrap_or("https://ntfy.sh").trim_end_matches('/');
    format!("{server}/")
}

/// ntfy turns tags that are emoji short codes into emoji before the title.
fn emoji_tag(model: &str) -> &'static str {
    match model {
        "Comment" => "speech_balloon",
        "Block" => "no_entry",
        "Favorite" => "star",
        "Deploy" => "rocket",
        _ => "memo",
    }
}

/// ntfy's priorities, 1 (min) to 5 (max).
fn priority(name: Option<&str>) -> u8 {
    match name {
        Some("min") => 1,
        Some("low") => 2,
        Some("high") => 4,
        Some("max") => 5,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, Captured, MARKUP_TITLE, deliver_one, fixture_json};
    use serde_json::{Value, json};

    const TOPIC: &str = "sprintly-topicSecret77";
    const TOKEN: &str = "tk_ntfyTokenSecret99";

    /// Delivers one fixture with the topic and `extra` options (checking the topic shows
    /// nowhere in the report); returns the request and the report as shown.
    async fn deliver(extra: Value, fixture: &str) -> (Captured, String) {
        let options = |server: &CaptureServer| {
            let mut options = json!({"server": server.url(), "topic": TOPIC});
            options
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            options
        };
        let (report, sent) = deliver_one("ntfy", options, &fixture_json(fixture), TOPIC).await;
        (sent, lookout_testkit::shown(&report))
    }

    #[tokio::test]
    async fn publishes_json_to_the_root_url() {
        let (sent, report) =
            deliver(json!({"token": TOKEN, "priority": "high"}), "item-markup").await;
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, "/");
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let body = sent.json();
        assert_eq!(body["topic"], TOPIC);
        assert_eq!(body["priority"], 4);
        assert_eq!(body["tags"], json!(["memo", "sprint.ly"]));
        assert_eq!(body["click"], "http://sprint.ly/i/1/116550/");
        assert!(body.get("markdown").is_none(), "plain text by default");
        // Plain text: the title's markup arrives exactly as typed, nothing to interpret.
        assert_eq!(body["title"], format!("Story #1212: {MARKUP_TITLE}"));
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "Joe S. created the story #1212 - {MARKUP_TITLE} (http://sprint.ly/i/1/116550/)"
            )),
            "{message}"
        );
        assert!(message.contains("\nTags: <script>, a&b"), "{message}");
        assert!(!report.contains(TOKEN), "{report}");
    }

    #[tokio::test]
    async fn markdown_when_asked() {
        let (sent, _) = deliver(json!({"markdown": true}), "item-markup").await;
        let body = sent.json();
        assert_eq!(body["markdown"], true);
        assert!(sent.header("authorization").is_none());
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(r#"&lt;b&gt;&amp;"x"&lt;/b&gt; \*bold\* \_under\_ \`code\`"#),
            "{message}"
        );
    }

    #[tokio::test]
    async fn deploys_have_no_click_link() {
        let (sent, _) = deliver(json!({}), "deploy").await;
        let body = sent.json();
        assert_eq!(body["tags"][0], "rocket");
        assert_eq!(body["priority"], 3);
        assert!(body.get("click").is_none());
    }
}
