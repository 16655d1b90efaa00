//! The `mattermost` service (Mattermost). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs mattermost` shows them.

use lookout::prelude::*;
use lookout::text::attachment::{slack_attachment, with_attachment};

lookout::service! {
    /// Mattermost
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a Mattermost channel
    /// through an incoming webhook, as a message attachment: coloured by item type, with
    /// what happened, the item's title linking to it, the description or comment, and
    /// the item's fields side by side.
    ///
    /// 1. In Mattermost, open **Product menu → Integrations → Incoming Webhooks** and
    ///    select **Add Incoming Webhook**. (No **Integrations**? A System Admin enables
    ///    incoming webhooks in **System Console → Integrations → Integration
    ///    Management**.)
    /// 2. Give it a name, choose the channel it posts to, and select **Add**.
    /// 3. Put the URL it shows (`https://your-mattermost-server/hooks/…`) in `url`.
    ///    Anyone who has it can post to your channel, so keep it in the config file only
    ///    (Lookout shows only its host).
    /// 4. Optionally set `channel` (a channel's name such as `town-square`, not its
    ///    display name) to post elsewhere, and `username` and `icon_url` to change how the
    ///    posts look. The last two only work when the System Console allows integrations
    ///    to override usernames and profile picture icons.
    ///
    /// User text is escaped for Mattermost's Markdown, including `@`: a title saying
    /// `@channel` or `@all` shows as text and notifies nobody.
    pub struct Mattermost;

    category: Chat,
    // Mattermost servers may rate-limit per webhook; one a second stays clear of it.
    rate_limit: RateLimit::CHAT_WEBHOOK,
    // A post is at most 16,383 characters; counted over the whole body (attachments
    // included), which is stricter.
    limits: Limits::cut(&[
        Limit::body(16_383, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://mattermost.example.com/hooks/xxx-generatedkey-xxx""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "url",
        "The incoming webhook URL (`https://your-mattermost-server/hooks/…`).",
    )
    .secret(),
    OptionSpec::string(
        "channel",
        "Post to this channel (its name, e.g. `town-square`) instead of the webhook's.",
    )
    .public()
    .optional(),
    OptionSpec::string("username", "Post under this name instead of the webhook's.")
        .public()
        .optional(),
    OptionSpec::url(
        "icon_url",
        "Post with this picture instead of the webhook's.",
    )
    .public()
    .optional(),
];

impl Service for Mattermost {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let overrides = job.options.pick(&["channel", "username", "icon_url"]);
        let body = with_attachment(overrides, slack_attachment(&message, MATTERMOST));
        Ok(vec![HttpRequest::post(job.url("url")?).json(body).into()])
    }
}

/// Mattermost's Markdown (message text, attachment pretext, text and field values).
const MATTERMOST: Dialect = Dialect::markdown(escape_mattermost);

/// CommonMark escaping, and `@` written as the entity `&#64;`. Mattermost's server
/// finds `@channel`/`@all`/`@here` in the raw text, treating a backslash as a word
/// break, so only an entity keeps user text from notifying a whole channel.
fn escape_mattermost(text: &str) -> String {
    text.split('@')
        .map(escape::markdown)
        .collect::<Vec<_>>()
        .join("&#64;")
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, MARKUP_TITLE, deliver_one, fixture_json};
    use serde_json::json;

    const KEY: &str = "x9generatedkey7q";

    async fn deliver(name: &str) -> serde_json::Value {
        let options = |server: &CaptureServer| {
            let url = format!("{}/hooks/{KEY}", server.url());
            json!({"url": url, "channel": "dev", "username": "sprintly"})
        };
        let (_, request) = deliver_one("mattermost", options, &fixture_json(name), KEY).await;
        assert_eq!(request.path, format!("/hooks/{KEY}"));
        request.json()
    }

    #[tokio::test]
    async fn an_item_arrives_as_an_attachment_with_escaped_markdown() {
        let body = deliver("item-markup").await;
        assert_eq!(body["channel"], "dev");
        assert_eq!(body["username"], "sprintly");
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["color"], "#96be60");
        assert!(
            attachment["fallback"]
                .as_str()
                .unwrap()
                .starts_with("Joe S. created")
        );
        // A linked title is shown as plain text by Mattermost: sent as typed.
        assert_eq!(attachment["title"], format!("Story #1212: {MARKUP_TITLE}"));
        assert_eq!(attachment["title_link"], "http://sprint.ly/i/1/116550/");
        // The pretext is Markdown: escaped, and `@` is an entity so nobody is notified.
        assert_eq!(
            attachment["pretext"],
            r#"Joe S. created the story [\#1212 \- &lt;b&gt;&amp;"x"&lt;/b&gt; \*bold\* \_under\_ \`code\` \[link\]\(http://evil.example\) &#64;everyone](http://sprint.ly/i/1/116550/)"#
        );
        let fields = attachment["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 5);
        assert!(fields.iter().all(|f| f["short"] == true));
        assert_eq!(fields[1]["title"], "Status");
        assert_eq!(
            fields[1]["value"],
            "[Backlog](https://sprint.ly/reports?status=backlog)"
        );
    }

    #[tokio::test]
    async fn a_deploy_lists_its_items_in_the_text() {
        let body = deliver("deploy").await;
        let attachment = &body["attachments"][0];
        assert!(attachment.get("title").is_none());
        assert_eq!(
            attachment["pretext"],
            "Joe S. deployed 3 items to production"
        );
        let text = attachment["text"].as_str().unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("- [Story \\#1212](http://sprint.ly/i/1111/1212/): As a user"));
    }

    #[test]
    fn escaping_writes_at_signs_as_entities() {
        let escaped = super::escape_mattermost(r#"<b>&"x"</b> *b* [l](u) @everyone"#);
        assert_eq!(
            escaped,
            r#"&lt;b&gt;&amp;"x"&lt;/b&gt; \*b\* \[l\]\(u\) &#64;everyone"#
        );
        assert_eq!(
            super::MATTERMOST.list_lines(&[lookout::Rich::text("@all"), lookout::Rich::text("b")]),
            ["- &#64;all", "- b"]
        );
    }
}
