//! The `rocketchat` service (Rocket.Chat). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs rocketchat` shows them.

use lookout::prelude::*;
use lookout::text::attachment::{slack_attachment, with_attachment};

lookout::service! {
    /// Rocket.Chat
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a Rocket.Chat channel
    /// through an incoming webhook, as a message attachment: coloured by item type, with
    /// what happened, the item's title linking to it, the description or comment, and
    /// the item's fields side by side.
    ///
    /// 1. In Rocket.Chat, open **Administration → Workspace → Integrations**, select
    ///    **New**, then **Incoming**. You need the *manage-incoming-integrations*
    ///    permission.
    /// 2. Turn on **Enabled**, give it a name, set **Post to Channel** (`#channel`, or
    ///    `@user` for direct messages) and **Post as** (an existing user, often a bot
    ///    account), and optionally an alias and avatar. Leave **Script Enabled** off.
    /// 3. Select **Save**, then copy the **Webhook URL** it shows
    ///    (`https://your-server/hooks/…/…`).
    /// 4. Put that URL in `url`. It carries the integration's token: anyone who has it
    ///    can post as that user, so keep it in the config file only (Lookout shows only
    ///    its host).
    /// 5. Optionally set `channel`, `username` (the alias shown) and `icon_url` to
    ///    override the integration's settings.
    ///
    /// Rocket.Chat's message text has no way to escape Markdown, links or mentions, so
    /// the message line only says what kind of event it is (`New item in Sprint.ly`);
    /// everything users wrote goes into the attachment, whose Markdown Lookout escapes
    /// (titles show exactly as typed, and nobody is mentioned).
    pub struct Rocketchat;

    category: Chat,
    // Rocket.Chat rate-limits incoming webhooks per integration.
    rate_limit: RateLimit::CHAT_WEBHOOK,
    // Rocket.Chat's default Message_MaxAllowedSize: 5,000 characters.
    limits: Limits::cut(&[
        Limit::field("/text", 5_000, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://chat.example.com/hooks/EXAMPLEid123/EXAMPLEtokenABCDEFGHIJKLMNOPQRSTUVWXYZ""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "url",
        "The integration's webhook URL (`https://your-server/hooks/…/…`).",
    )
    .secret(),
    OptionSpec::string(
        "channel",
        "Post to this channel (`#name`) or user (`@name`) instead of the integration's.",
    )
    .public()
    .optional(),
    OptionSpec::string(
        "username",
        "Show this name (alias) instead of the integration's.",
    )
    .public()
    .optional(),
    OptionSpec::url(
        "icon_url",
        "Show this picture instead of the integration's.",
    )
    .public()
    .optional(),
];

impl Service for Rocketchat {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let mut body = job.options.pick(&["channel", "username", "icon_url"]);
        // From our own words only: `from_event` accepts known models only.
        let line = format!("New {} in Sprint.ly", job.event.model.to_lowercase());
        body.insert("text".into(), line.into());
        let mut attachment = slack_attachment(&message, ROCKETCHAT);
        // Rocket.Chat renders the pretext and text as Markdown only when asked to.
        attachment.insert("mrkdwn_in".into(), json!(["pretext", "text"]));
        let body = with_attachment(body, attachment);
        Ok(vec![HttpRequest::post(job.url("url")?).json(body).into()])
    }
}

/// Rocket.Chat attachment Markdown (pretext, text, field values).
const ROCKETCHAT: Dialect = Dialect::markdown(escape_rocketchat);

/// Rocket.Chat renders attachments with `marked` after escaping HTML itself: backslash
/// escapes work, and `&`, `<`, `>` must stay as they are (an entity or `\&` would show
/// literally).
fn escape_rocketchat(text: &str) -> String {
    escape::backslashed(text, "\\*_~`|#-+[]()!")
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, MARKUP_TITLE, Reply, deliver_one, fixture_json};
    use serde_json::json;

    const TOKEN: &str = "T0kenOfTheIntegration";

    async fn deliver(name: &str) -> serde_json::Value {
        let options = |server: &CaptureServer| {
            server.script("/hooks", [Reply::ok().body(r#"{"success":true}"#)]);
            let url = format!("{}/hooks/abc123/{TOKEN}", server.url());
            json!({"url": url, "channel": "#dev"})
        };
        let (_, request) = deliver_one("rocketchat", options, &fixture_json(name), TOKEN).await;
        assert!(request.path.ends_with(TOKEN));
        request.json()
    }

    #[tokio::test]
    async fn an_item_arrives_with_user_text_only_in_the_escaped_attachment() {
        let body = deliver("item-markup").await;
        assert_eq!(body["text"], "New item in Sprint.ly");
        assert_eq!(body["channel"], "#dev");
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["mrkdwn_in"], json!(["pretext", "text"]));
        // Rocket.Chat shows the title as plain text.
        assert_eq!(attachment["title"], format!("Story #1212: {MARKUP_TITLE}"));
        assert_eq!(attachment["title_link"], "http://sprint.ly/i/1/116550/");
        // Markdown, escaped with backslashes; Rocket.Chat escapes HTML itself, so `<`,
        // `&` and `"` go as they are.
        assert_eq!(
            attachment["pretext"],
            r#"Joe S. created the story [\#1212 \- <b>&"x"</b> \*bold\* \_under\_ \`code\` \[link\]\(http://evil.example\) @everyone](http://sprint.ly/i/1/116550/)"#
        );
        let tags = &attachment["fields"][3];
        assert_eq!(tags["title"], "Tags");
        assert_eq!(tags["short"], true);
        assert_eq!(
            tags["value"],
            "[<script>](https://sprint.ly/reports?tag=%3Cscript%3E), [a&b](https://sprint.ly/reports?tag=a%26b)"
        );
    }

    #[tokio::test]
    async fn a_comment_is_quoted_with_mentions_cleaned() {
        let body = deliver("comment-mentions").await;
        assert_eq!(body["text"], "New comment in Sprint.ly");
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["color"], "#454545", "tasks are grey");
        assert_eq!(
            attachment["text"],
            "> Craig Pattison can you pair with Joe Stump on this?"
        );
    }

    #[test]
    fn escaping_uses_backslashes_and_keeps_html_characters() {
        let escaped = super::escape_rocketchat(r#"<b>&"x"</b> *b* [l](u) @everyone"#);
        assert_eq!(escaped, r#"<b>&"x"</b> \*b\* \[l\]\(u\) @everyone"#);
        assert_eq!(super::ROCKETCHAT.quote("a\n*b*"), "> a\n> \\*b\\*");
    }
}
