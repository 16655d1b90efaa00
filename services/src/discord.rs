//! The `discord` service (Discord). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs discord` shows them.

use std::time::Duration;

use lookout::prelude::*;
use lookout::text::budget::{fit, fit_lines, truncate};
use lookout::text::wording::color_number;

lookout::service! {
    /// Discord
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a Discord channel as
    /// an embed: a title linking to the item, coloured by item type, with what happened,
    /// the description or comment, and the item's fields.
    ///
    /// 1. In Discord, open **Server Settings → Integrations → Webhooks** (or, on the
    ///    channel, **Edit Channel → Integrations → Webhooks**). You need the *Manage
    ///    Webhooks* permission.
    /// 2. Select **New Webhook**, choose the channel it posts to, optionally give it a
    ///    name and an avatar, and select **Copy Webhook URL**.
    /// 3. Put that URL in `url`. It carries the webhook's token: anyone who has it can
    ///    post to your channel, so keep it in the config file only (Lookout shows only
    ///    its host).
    /// 4. Optionally set `username` and `avatar_url` to override the name and picture
    ///    set in Discord.
    ///
    /// For a forum or media channel, add `?thread_id=…` (an existing thread's id) to
    /// the URL. Nothing Lookout posts can ping anyone: user text is escaped and the
    /// message's `allowed_mentions` is empty, so an `@everyone` in a title stays text.
    /// Lookout adds `wait=true` to the URL, so that Discord confirms each message (or
    /// says why not) instead of answering `204 No Content` before saving it.
    ///
    /// Discord refuses an embed over its limits, so a long deploy lists as many items as
    /// fit and then says how many more there are. When Discord answers `429` with a
    /// `retry_after` in its body, Lookout waits that long before trying again.
    pub struct Discord;

    category: Chat,
    // Discord allows webhooks five requests per two seconds.
    rate_limit: RateLimit::every(Duration::from_millis(400)).burst(5),
    answers: Answers::json("Discord", "/code", "/message", &[
        Means::gone(&["10015"], "the webhook was deleted"),
        Means::gone(&["50027"], "the webhook's token is invalid"),
    ]),
    wait: Wait::BodySeconds("/retry_after"),
    // discord.com/developers/docs/resources/message#embed-object-embed-limits
    limits: Limits::cut(&[
        Limit::field("/content", 2_000, Unit::Chars),
        Limit::field("/embeds/*/title", 256, Unit::Chars),
        Limit::field("/embeds/*/description", 4_096, Unit::Chars),
        Limit::field("/embeds/*/fields", 25, Unit::Entries),
        Limit::field("/embeds/*/fields/*/name", 256, Unit::Chars),
        Limit::field("/embeds/*/fields/*/value", 1_024, Unit::Chars),
        Limit::total(EMBED_TEXTS, 6_000, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://discord.com/api/webhooks/123456789012345678/EXAMPLE-webhook-token""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::url(
        "url",
        "The webhook URL from Discord (`https://discord.com/api/webhooks/…`).",
    )
    .secret(),
    OptionSpec::string("username", "Post under this name instead of the webhook's.")
        .public()
        .optional(),
    OptionSpec::url(
        "avatar_url",
        "Post with this picture instead of the webhook's.",
    )
    .public()
    .optional(),
];

/// What Discord counts together against its 6,000 characters across a message's embeds.
const EMBED_TEXTS: &[&str] = &[
    "/embeds/*/title",
    "/embeds/*/description",
    "/embeds/*/fields/*/name",
    "/embeds/*/fields/*/value",
];

/// Discord's Markdown (embed titles, descriptions and field values).
const DISCORD: Dialect = Dialect::markdown(escape_discord);

/// A backslash before every character that can start markup, a mention (`<@…>`,
/// `@everyone`), a heading, a list or a masked link. Discord shows HTML entities
/// literally, so none are used.
fn escape_discord(text: &str) -> String {
    escape::backslashed(text, "\\*_~`|<>#-+[]()@")
}

/// Discord's limits (in characters) for an embed's title, description and field values
/// (discord.com/developers/docs/resources/message#embed-object-embed-limits); a message
/// over them is refused whole, so Lookout stays under them.
const TITLE_CHARS: usize = 120; // escaping may double it; Discord allows 256
const DESCRIPTION_CHARS: usize = 4096;
const FIELD_VALUE_CHARS: usize = 1024;

impl Service for Discord {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let mut body = job.options.pick(&["username", "avatar_url"]);
        body.insert("embeds".into(), json!([embed(&message)]));
        // Parse no mentions at all, whatever the text says.
        body.insert("allowed_mentions".into(), json!({"parse": []}));
        let mut request = HttpRequest::post(job.url("url")?).json(body.into());
        request.url.query_pairs_mut().append_pair("wait", "true");
        Ok(vec![request.into()])
    }
}

/// The one embed a message becomes.
fn embed(message: &Message) -> Value {
    let mut embed = json!({
        "title": DISCORD.text(&truncate(&message.title, TITLE_CHARS)),
        "description": description(message),
        "color": color_number(message.color),
        "fields": message.fields.iter().map(field).collect::<Vec<_>>(),
    });
    if let Some(url) = &message.url {
        embed["url"] = url.clone().into();
    }
    embed
}

/// The headline, then the quote, then as many list items (a deploy's) as fit, and how
/// many more there are.
fn description(message: &Message) -> String {
    let mut text = DISCORD.rich(&message.headline);
    if let Some(quote) = &message.quote {
        text.push_str("\n\n");
        text.push_str(&DISCORD.quote(quote));
    }
    // The list gets at least the room of its "and N more" line.
    let mut text = fit(&text, DESCRIPTION_CHARS - 100);
    if !message.list.is_empty() {
        let room = DESCRIPTION_CHARS - text.chars().count() - 2;
        text.push_str("\n\n");
        text.push_str(&fit_lines(&DISCORD.list_lines(&message.list), room));
    }
    text
}

/// An inline field, cut to Discord's limit (a value with many tags).
fn field(field: &Field) -> Value {
    let value = fit(&DISCORD.rich(&field.value), FIELD_VALUE_CHARS);
    json!({"name": field.name, "value": value, "inline": true})
}

#[cfg(test)]
mod tests {
    use lookout_testkit::assert_failed;
    use lookout_testkit::{CaptureServer, deliver_one, fixture_json};
    use serde_json::json;

    const TOKEN: &str = "s3cret-W3bhook-T0ken";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_webhook_disables_the_target() {
        use lookout::Outcome;
        use lookout_testkit::{Reply, outcome_of_reply};
        let url = format!("https://discord.com/api/webhooks/123/{TOKEN}");
        let options = json!({ "url": url });
        let item = fixture_json("item");
        let gone = Reply::status(404).body(r#"{"message": "Unknown Webhook", "code": 10015}"#);
        let outcome = outcome_of_reply("discord", options.clone(), &item, gone, TOKEN).await;
        let Outcome::Disabled { reason, status } = outcome else {
            panic!("not disabled: {outcome:?}");
        };
        assert_eq!(status, 404);
        assert!(
            reason.contains("Discord: the webhook was deleted"),
            "{reason}"
        );
        // Another 404 (a bad route) goes by status: failed, not disabled.
        let other = Reply::status(404).body(r#"{"message": "404: Not Found", "code": 0}"#);
        let outcome = outcome_of_reply("discord", options, &item, other, TOKEN).await;
        assert_failed(&outcome, None, "");
    }

    async fn deliver(name: &str) -> (serde_json::Value, String) {
        let options = |server: &CaptureServer| {
            let url = format!("{}/api/webhooks/123/{TOKEN}", server.url());
            json!({"url": url, "username": "Sprint.ly"})
        };
        let (_, request) = deliver_one("discord", options, &fixture_json(name), TOKEN).await;
        (request.json(), request.path)
    }

    #[tokio::test]
    async fn an_item_arrives_as_an_escaped_embed_that_pings_nobody() {
        let (body, path) = deliver("item-markup").await;
        assert_eq!(path, format!("/api/webhooks/123/{TOKEN}?wait=true"));

        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        assert_eq!(body["username"], "Sprint.ly");
        let embed = &body["embeds"][0];
        assert_eq!(embed["color"], 0x96be60, "stories are green");
        assert_eq!(embed["url"], "http://sprint.ly/i/1/116550/");
        // Every piece of markup in the title is escaped: it shows as typed.
        assert_eq!(
            embed["title"],
            r#"Story \#1212: \<b\>&"x"\</b\> \*bold\* \_under\_ \`code\` \[link\]\(http://evil.example\) \@everyone"#
        );
        let description = embed["description"].as_str().unwrap();
        assert!(
            description.starts_with(r"Joe S. created the story [\#1212 \- \<b\>&"),
            "{description}"
        );
        assert!(
            description.ends_with(r"\@everyone](http://sprint.ly/i/1/116550/)"),
            "{description}"
        );
        let fields = embed["fields"].as_array().unwrap();
        assert_eq!(fields[3]["name"], "Tags");
        assert_eq!(
            fields[3]["value"],
            r"[\<script\>](https://sprint.ly/reports?tag=%3Cscript%3E), [a&b](https://sprint.ly/reports?tag=a%26b)"
        );
    }

    #[tokio::test]
    async fn a_deploy_lists_its_items() {
        let (body, _) = deliver("deploy").await;
        let embed = &body["embeds"][0];
        assert_eq!(embed["title"], "Deploy to production");
        assert!(embed.get("url").is_none());
        let description = embed["description"].as_str().unwrap();
        assert_eq!(
            description.lines().filter(|l| l.starts_with("- ")).count(),
            3
        );
        assert!(description.contains("- [Task \\#1213](http://sprint.ly/i/1111/1213/): Change"));
    }

    #[test]
    fn a_long_deploy_stays_under_discords_limit() {
        let mut event: serde_json::Value = serde_json::from_str(&fixture_json("deploy")).unwrap();
        let item = event["attributes"]["items"][0].clone();
        event["attributes"]["items"] = serde_json::Value::Array(vec![item; 200]);
        let event = lookout::Event::parse(&event.to_string()).unwrap();
        let message = lookout::Message::from_event(&event).unwrap();
        let description = super::description(&message);
        assert!(description.chars().count() <= super::DESCRIPTION_CHARS);
        assert!(description.contains("\n… and "), "{description}");
    }

    #[test]
    fn escaping_uses_backslashes_only() {
        let escaped = super::escape_discord(r#"<b>&"x"</b> *b* [l](u) @everyone"#);
        assert_eq!(escaped, r#"\<b\>&"x"\</b\> \*b\* \[l\]\(u\) \@everyone"#);
        assert_eq!(super::escape_discord(r"a\b"), r"a\\b");
    }

    #[test]
    fn links_keep_their_markup_and_text_is_escaped() {
        let rich = lookout::Rich::text("*a* ").push_link("[x]", "http://h/a b");
        assert_eq!(super::DISCORD.rich(&rich), r"\*a\* [\[x\]](http://h/a%20b)");
    }

    #[test]
    fn a_429_asks_for_its_wait_in_seconds() {
        use lookout::Registered as _;
        use lookout::delivery::Answer;
        use std::time::Duration;
        let wait = |body: &[u8]| {
            super::Discord
                .registration()
                .wait_in(&Answer::new(429, body))
        };
        let body =
            br#"{"message":"You are being rate limited.","retry_after":0.35,"global":false}"#;
        assert_eq!(wait(body), Some(Duration::from_millis(350)));
        assert_eq!(wait(b"<html>slow down</html>"), None);
    }
}
