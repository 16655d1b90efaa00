//! The `googlechat` service (Google Chat). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs googlechat` shows them.

use lookout::prelude::*;
use lookout::text::wording::color_number;

lookout::service! {
    /// Google Chat
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a Google Chat space
    /// as a card: the item's title, what happened, the description or comment, the
    /// item's fields, and a button (in the item type's colour) to open the item.
    ///
    /// 1. In Google Chat, open the space, then open its menu (the space's name) and
    ///    select **Apps & integrations → Webhooks** (**Manage webhooks** in some
    ///    versions). Webhooks need a Google Workspace account, and your administrator
    ///    may have turned them off.
    /// 2. Select **Add webhook**, give it a name (and optionally an avatar URL), and
    ///    **Save**.
    /// 3. Copy the webhook's URL (`https://chat.googleapis.com/v1/spaces/…/messages?key=…&token=…`)
    ///    and put it in `url`. Its `key` and `token` let anyone post to the space, so
    ///    keep it in the config file only (Lookout shows only its host).
    ///
    /// Card text is Google Chat's simple HTML; user text is escaped for it, so a title
    /// shows exactly as typed. The notification text (`fallbackText`) is the plain
    /// one-line summary: Google Chat's `text` field has Markdown-like formatting with no
    /// way to escape it, so Lookout does not put user text there. A space's webhook
    /// accepts about one message per second.
    pub struct Googlechat;

    category: Chat,
    // Google Chat allows about one message per second per space.
    rate_limit: RateLimit::CHAT_WEBHOOK,
    // developers.google.com/workspace/chat/limits: a message is at most 32,000 bytes;
    // its text 4,096 characters.
    limits: Limits::cut(&[
        Limit::body(32_000, Unit::Bytes),
        Limit::field("/text", 4_096, Unit::Chars),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://chat.googleapis.com/v1/spaces/AAAAexample/messages?key=EXAMPLE-key&token=EXAMPLE-token""#,
}

const OPTIONS: &[OptionSpec] = &[OptionSpec::url(
    "url",
    "The space's webhook URL, with its `key` and `token`.",
)
.secret()];

impl Service for Googlechat {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let body = json!({
            "fallbackText": message.summary,
            "cardsV2": [{"cardId": "sprintly", "card": card(&message)}],
        });
        Ok(vec![HttpRequest::post(job.url("url")?).json(body).into()])
    }
}

/// The HTML of card text widgets, which accept a few tags only: `&`, `<` and `>` as
/// entities, quotes as they are (not every such renderer decodes `&quot;`), links as
/// `<a href>`.
const CARD: Dialect = Dialect::html(escape::html_text);

/// The card: a header (plain text), what happened with the quote and list, the fields,
/// and the button.
fn card(message: &Message) -> Value {
    let mut sections = vec![json!({"widgets": story(message)})];
    if !message.fields.is_empty() {
        let fields: Vec<Value> = message
            .fields
            .iter()
            .map(|field| {
                json!({"decoratedText": {
                    "topLabel": field.name,
                    "text": CARD.rich(&field.value),
                    "wrapText": true,
                }})
            })
            .collect();
        sections.push(json!({"widgets": fields}));
    }
    if let Some(url) = &message.url {
        sections.push(json!({"widgets": [{"buttonList": {"buttons": [{
            "text": "Open in Sprint.ly",
            "type": "FILLED",
            "color": google_color(message.color),
            "onClick": {"openLink": {"url": url}},
        }]}}]}));
    }
    json!({
        "header": {"title": message.title, "subtitle": message.actor},
        "sections": sections,
    })
}

/// The headline, then the quote (in italics) and the list, one paragraph each.
fn story(message: &Message) -> Vec<Value> {
    let mut paragraphs = vec![CARD.rich(&message.headline)];
    if let Some(quote) = &message.quote {
        let quote = escape::html_text(quote).replace('\n', "<br>");
        paragraphs.push(format!("<i>{quote}</i>"));
    }
    if !message.list.is_empty() {
        let items: String = message
            .list
            .iter()
            .map(|item| format!("<li>{}</li>", CARD.rich(item)))
            .collect();
        paragraphs.push(format!("<ul>{items}</ul>"));
    }
    paragraphs
        .into_iter()
        .map(|text| json!({"textParagraph": {"text": text}}))
        .collect()
}

/// A `#rrggbb` colour as Google's `Color` (each channel from 0 to 1).
fn google_color(hex: &str) -> Value {
    let number = color_number(hex);
    let channel = |shift: u32| f64::from((number >> shift) & 0xff) / 255.0;
    json!({"red": channel(16), "green": channel(8), "blue": channel(0), "alpha": 1})
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, MARKUP_TITLE, deliver_one, fixture_json};
    use serde_json::json;

    const KEY: &str = "AIzaExampleKey";
    const TOKEN: &str = "tok3n-0f-the-space";

    async fn deliver(name: &str) -> serde_json::Value {
        let options = |server: &CaptureServer| {
            let query = format!("key={KEY}&token={TOKEN}");
            json!({"url": format!("{}/v1/spaces/AAAA/messages?{query}", server.url())})
        };
        let (report, request) =
            deliver_one("googlechat", options, &fixture_json(name), TOKEN).await;
        let report = format!("{report:?}");
        assert!(
            !report.contains(KEY),
            "the key shows in the report: {report}"
        );
        assert!(request.path.ends_with(&format!("key={KEY}&token={TOKEN}")));
        request.json()
    }

    #[tokio::test]
    async fn an_item_arrives_as_a_card_with_escaped_html() {
        let body = deliver("item-markup").await;
        assert!(
            body.get("text").is_none(),
            "no user text in Markdown-like `text`"
        );
        let fallback = body["fallbackText"].as_str().unwrap();
        assert!(
            fallback.starts_with(r#"Joe S. created the story "<b>&"#),
            "{fallback}"
        );
        let card = &body["cardsV2"][0]["card"];
        // The header is plain text.
        assert_eq!(
            card["header"]["title"],
            format!("Story #1212: {MARKUP_TITLE}")
        );
        assert_eq!(card["header"]["subtitle"], "Joe S.");
        // Paragraphs are HTML: user text escaped, our link kept.
        assert_eq!(
            card["sections"][0]["widgets"][0]["textParagraph"]["text"],
            r#"Joe S. created the story <a href="http://sprint.ly/i/1/116550/">#1212 - &lt;b&gt;&amp;"x"&lt;/b&gt; *bold* _under_ `code` [link](http://evil.example) @everyone</a>"#
        );
        let tags = &card["sections"][1]["widgets"][3]["decoratedText"];
        assert_eq!(tags["topLabel"], "Tags");
        assert_eq!(
            tags["text"],
            r#"<a href="https://sprint.ly/reports?tag=%3Cscript%3E">&lt;script&gt;</a>, <a href="https://sprint.ly/reports?tag=a%26b">a&amp;b</a>"#
        );
        let button = &card["sections"][2]["widgets"][0]["buttonList"]["buttons"][0];
        assert_eq!(
            button["onClick"]["openLink"]["url"],
            "http://sprint.ly/i/1/116550/"
        );
        assert_eq!(
            button["color"]["green"],
            json!(190.0 / 255.0),
            "story green"
        );
    }

    #[tokio::test]
    async fn a_deploy_lists_its_items_and_has_no_button() {
        let body = deliver("deploy").await;
        let card = &body["cardsV2"][0]["card"];
        assert_eq!(card["header"]["title"], "Deploy to production");
        let list = card["sections"][0]["widgets"][1]["textParagraph"]["text"]
            .as_str()
            .unwrap();
        assert_eq!(list.matches("<li>").count(), 3);
        assert!(list.starts_with(
            r#"<ul><li><a href="http://sprint.ly/i/1111/1212/">Story #1212</a>: As a user"#
        ));
        assert_eq!(
            card["sections"].as_array().unwrap().len(),
            2,
            "text and fields only"
        );
    }

    #[test]
    fn card_html_escapes_text_and_keeps_quotes() {
        let rich = lookout::Rich::text("<b>\"&\" ").push_link("a<b", "http://h/?q=\"1\"");
        assert_eq!(
            super::CARD.rich(&rich),
            "&lt;b&gt;\"&amp;\" <a href=\"http://h/?q=&quot;1&quot;\">a&lt;b</a>"
        );
    }
}
