//! The `zulip` service (Zulip). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs zulip` shows them.

use lookout::prelude::*;

lookout::service! {
    /// Zulip
    ///
    /// Posts each new item, comment, block, favorite and deploy to a Zulip channel (called
    /// a *stream* in older Zulip versions), under a topic of your choice, as a bot of
    /// yours. Messages use Zulip's Markdown: a linked headline, the comment or
    /// description as a quote, and the item's assignee, status, score and tags.
    ///
    /// 1. In Zulip, click the gear icon in the upper right corner and open
    ///    **Personal settings → Bots**, then **Add a new bot**.
    /// 2. Choose the bot type **Incoming webhook**: it can only send messages, which is
    ///    all Lookout needs. Give it a name (e.g. *Sprint.ly*) and an avatar, and click
    ///    **Add** (**Create bot** in older versions).
    /// 3. In the bot's row, note its **bot email** (`sprintly-bot@…`) and its
    ///    **API key**. The download icon gives you both in a `zuliprc` file, together with
    ///    your organization's URL (`site`).
    /// 4. Put them in Lookout's config file, next to the other options:
    ///    `site` (e.g. `https://yourorg.zulipchat.com`), `bot_email`, `api_key`, and the
    ///    `stream` (channel) to post to. Keep the key in the config file, readable only by
    ///    the account that runs Lookout (`chmod 600`), never in scripts, command lines or
    ///    version control: anyone with the key can post as the bot.
    /// 5. Optionally set `topic`; by default messages go to a topic named after the
    ///    product, so each product gets its own thread.
    ///
    /// The bot can post to any public channel. For a private channel, subscribe the bot to
    /// it first. Lookout sends `POST {site}/api/v1/messages` with the bot's email and key
    /// as HTTP Basic credentials and identifies itself with a `Lookout/<version>`
    /// User-Agent, as Zulip asks integrations to do.
    pub struct Zulip;

    category: Chat,
    // Zulip allows each bot about 200 API requests per minute.
    rate_limit: RateLimit::per_second(3).burst(10).per_origin(),
    // zulip.com/api/send-message: content at most 10,000 code points, topic 60.
    limits: Limits::cut(&[
        Limit::field("/content", 10_000, Unit::Chars),
        Limit::field("/topic", 60, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"site = "https://yourorg.zulipchat.com"
bot_email = "sprintly-bot@yourorg.zulipchat.com"
api_key = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
stream = "engineering"
topic = "Sprint.ly""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "site",
        "Your Zulip organization's URL, e.g. `https://yourorg.zulipchat.com`.",
    ).public(),
    OptionSpec::string("bot_email", "The bot's email address, from its row in Settings → Bots.").public(),
    OptionSpec::string("api_key", "The bot's API key.").secret(),
    OptionSpec::string("stream", "The channel (stream) to post to, by name.").public(),
    OptionSpec::string(
        "topic",
        "The topic to post under (Zulip shortens it to 60 characters). Default: the product's name.",
    ).public()
    .optional(),
];

impl Service for Zulip {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let options = job.options;
        let site = options
            .str("site")
            .unwrap_or_default()
            .trim_end_matches('/');
        let url = format!("{site}/api/v1/messages")
            .parse()
            .map_err(|e| BuildError::Invalid(format!("site: {e}")))?;
        let topic = options
            .str("topic")
            .unwrap_or(&job.event.product.name)
            .to_owned();
        let request = HttpRequest::post(url)
            .basic_auth(
                options.str("bot_email").unwrap_or_default(),
                options.str("api_key").unwrap_or_default(),
            )
            .form([
                ("type", "stream".to_owned()),
                ("to", options.str("stream").unwrap_or_default().to_owned()),
                ("topic", topic),
                ("content", message.markdown(&ZULIP)),
            ]);
        Ok(vec![request.into()])
    }
}

/// Zulip's Markdown: `[text](url)` links, user text through [`escape_zulip`].
const ZULIP: Dialect = Dialect::markdown(escape_zulip);

/// Zulip does not honour backslash escapes (zulip/zulip#18202: `\*` shows the
/// backslash), so CommonMark's escaping would leave stray backslashes there. Zulip does
/// pass character references through untouched, so markup characters become those
/// instead: `&`, `<`, `>` as named entities; `*` `_` `` ` `` `[` `]` `#` `~` `$` `|` `:`
/// everywhere (emphasis, mentions `@**…**`, code, links, headings and channel links,
/// strikethrough, TeX `$$`, tables, `:emoji:` and `scheme://` autolinks); and at the
/// start of a line `-` `+` `/` and the `.` or `)` after a number (lists, `/me`).
fn escape_zulip(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut line_start = true;
    let mut digits = String::new();
    for c in text.chars() {
        // A run of digits at the start of a line is held back until we know whether an
        // ordered-list marker (`1.` or `1)`) follows.
        if line_start && c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let after_digits = !digits.is_empty();
        out.push_str(&digits);
        digits.clear();
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '`' | '[' | ']' | '#' | '~' | '$' | '|' | ':' => {
                out.push_str(&escape::reference(c))
            }
            '.' | ')' if after_digits => out.push_str(&escape::reference(c)),
            '-' | '+' | '/' if line_start => out.push_str(&escape::reference(c)),
            c => out.push(c),
        }
        line_start = c == '\n' || (line_start && !after_digits && c == ' ');
    }
    out.push_str(&digits);
    out
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, Captured, deliver_one, fixture_json};
    use serde_json::json;

    const KEY: &str = "k3yZulipSecret0123";

    /// Delivers one fixture, checking the key shows nowhere in the report.
    async fn deliver(name: &str, topic: Option<&str>) -> Captured {
        let options = |server: &CaptureServer| {
            let mut options = json!({
                "site": server.url(),
                "bot_email": "bot@org.example",
                "api_key": KEY,
                "stream": "engineering",
            });
            if let Some(topic) = topic {
                options["topic"] = json!(topic);
            }
            options
        };
        let (_, sent) = deliver_one("zulip", options, &fixture_json(name), KEY).await;
        sent
    }

    #[tokio::test]
    async fn posts_a_stream_message_as_the_bot() {
        let sent = deliver("item-markup", None).await;
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, "/api/v1/messages");
        assert_eq!(
            sent.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        // "bot@org.example:k3yZulipSecret0123", base64.
        assert_eq!(
            sent.header("authorization"),
            Some("Basic Ym90QG9yZy5leGFtcGxlOmszeVp1bGlwU2VjcmV0MDEyMw==")
        );
        assert!(sent.header("user-agent").unwrap().starts_with("Lookout/"));
        assert_eq!(sent.form_field("type").as_deref(), Some("stream"));
        assert_eq!(sent.form_field("to").as_deref(), Some("engineering"));
        assert_eq!(sent.form_field("topic").as_deref(), Some("sprint.ly"));

        // The title's markup arrives as character references, which Zulip shows as the
        // characters typed: no bold, no code, no link, no mention.
        let content = sent.form_field("content").unwrap();
        assert!(
            content.contains(
                "&lt;b&gt;&amp;\"x\"&lt;/b&gt; &#42;bold&#42; &#95;under&#95; &#96;code&#96; \
                 &#91;link&#93;(http&#58;//evil.example) @everyone"
            ),
            "{content}"
        );
        assert!(content.starts_with("Joe S. created the story [&#35;1212 - "));
        assert!(content.contains("](http://sprint.ly/i/1/116550/)"));
        assert!(
            content
                .contains("**Tags:** [&lt;script&gt;](https://sprint.ly/reports?tag=%3Cscript%3E)")
        );
    }

    #[tokio::test]
    async fn topic_option_and_comment_quote() {
        let sent = deliver("comment", Some("Sprint.ly")).await;
        assert_eq!(sent.form_field("topic").as_deref(), Some("Sprint.ly"));
        let content = sent.form_field("content").unwrap();
        assert!(
            content.contains("\n\n> "),
            "the comment is quoted: {content}"
        );
    }

    #[test]
    fn escaping_uses_character_references() {
        use super::escape_zulip;
        assert_eq!(
            escape_zulip(r#"<b>&"x"</b> *y* @**all** `c` [l](http://e)"#),
            "&lt;b&gt;&amp;\"x\"&lt;/b&gt; &#42;y&#42; @&#42;&#42;all&#42;&#42; \
             &#96;c&#96; &#91;l&#93;(http&#58;//e)"
        );
        assert_eq!(
            escape_zulip("#**general** :smile: $$x$$ ~~s~~ a|b"),
            "&#35;&#42;&#42;general&#42;&#42; &#58;smile&#58; &#36;&#36;x&#36;&#36; &#126;&#126;s&#126;&#126; a&#124;b"
        );
        // Line starts: lists, /me, ordered lists; the same characters mid-line stay.
        assert_eq!(
            escape_zulip("- a-b\n  + c\n/me d/e\n12. f 3. g\n4) h\n10 apples"),
            "&#45; a-b\n  &#43; c\n&#47;me d/e\n12&#46; f 3. g\n4&#41; h\n10 apples"
        );
        assert_eq!(escape_zulip("2024"), "2024");
        // Already-escaped text is escaped again, so it shows as typed.
        assert_eq!(escape_zulip("&amp;"), "&amp;amp;");
    }

    #[test]
    fn zulip_is_markdown_with_its_own_escaping() {
        let rich = lookout::Rich::text("<b>&\"x\" ").push_link("#1 - *a*", "http://x/(1)");
        let markdown = super::ZULIP.rich(&rich);
        assert_eq!(
            markdown,
            "&lt;b&gt;&amp;\"x\" [&#35;1 - &#42;a&#42;](http://x/%281%29)"
        );
    }
}
