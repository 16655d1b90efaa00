//! The `discord` service (Discord). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs discord` shows them.

use std::time::Duration;

use lookout::prelude::*;
use lookout::render::Dialect;

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
    pub struct Discord;
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

/// Discord's limits (in characters) for an embed's title, description and field values;
/// a message over them is refused whole, so Lookout stays under them.
const TITLE_CHARS: usize = 120; // escaping may double it; Discord allows 256
const DESCRIPTION_CHARS: usize = 4096;
const FIELD_VALUE_CHARS: usize = 1024;

impl Service for Discord {
    fn rate_limit(&self) -> Option<RateLimit> {
        // Discord allows webhooks five requests per two seconds.
        Some(RateLimit::every(Duration::from_millis(400)).burst(5))
    }

    fn schema(&self) -> Schema {
        Schema::new(OPTIONS)
    }

    fn example(&self) -> &'static str {
        r#"url = "https://discord.com/api/webhooks/123456789012345678/EXAMPLE-webhook-token""#
    }

    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = Message::from_event(job.event)?;
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
    let dialect = Dialect::DISCORD;
    let mut embed = json!({
        "title": dialect.text(&format::truncate(&message.title, TITLE_CHARS)),
        "description": description(message),
        "color": format::color_number(message.color),
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
    let dialect = Dialect::DISCORD;
    let mut text = dialect.rich(&message.headline);
    if let Some(quote) = &message.quote {
        text.push_str("\n\n");
        text.push_str(&dialect.quote(quote));
    }
    // Room for the "and N more" line.
    let budget = DESCRIPTION_CHARS - 100;
    for (shown, item) in message.list.iter().enumerate() {
        let line = format!("\n- {}", dialect.rich(item));
        if text.chars().count() + line.chars().count() > budget {
            let more = message.list.len() - shown;
            text.push_str(&format!("\n… and {}", format::count_items(more)));
            break;
        }
        if shown == 0 {
            text.push('\n');
        }
        text.push_str(&line);
    }
    text
}

/// An inline field; a value too long for Discord (many tags) loses its links.
fn field(field: &Field) -> Value {
    let dialect = Dialect::DISCORD;
    let mut value = dialect.rich(&field.value);
    if value.chars().count() > FIELD_VALUE_CHARS {
        value = dialect.text(&format::truncate(
            &field.value.plain(),
            FIELD_VALUE_CHARS / 2 - 3,
        ));
    }
    json!({"name": field.name, "value": value, "inline": true})
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, deliver_one, fixture_json};
    use serde_json::json;

    const TOKEN: &str = "s3cret-W3bhook-T0ken";

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
}
