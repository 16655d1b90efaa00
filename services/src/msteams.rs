//! The `msteams` service (Microsoft Teams). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs msteams` shows them.

use lookout::prelude::*;
use lookout::text::Span;

lookout::service! {
    /// Microsoft Teams
    ///
    /// Posts new items, comments, blocks, favorites and deploys to a Teams channel as an
    /// Adaptive Card, through a Workflows (Power Automate) webhook: what happened, the
    /// item's title, its description or the comment, its fields, and a button to open
    /// it. Office 365 connectors ("Incoming Webhook") are retired; use Workflows.
    ///
    /// 1. In Teams, open the channel's **⋯ (More options) → Workflows**.
    /// 2. Pick the template **Send webhook alerts to a channel** (formerly *Post to a
    ///    channel when a webhook request is received*), name it, sign in if asked, and
    ///    choose the team and channel it posts to.
    /// 3. Create the workflow and copy the URL it shows (on
    ///    `…environment.api.powerplatform.com` or `…logic.azure.com`; it ends in a
    ///    `sig=` signature).
    /// 4. Put that URL in `url`. The signature lets anyone post to your channel, so keep
    ///    it in the config file only (Lookout shows only its host).
    ///
    /// The workflow belongs to the person who created it: add a co-owner in Power
    /// Automate so that it keeps working if they leave. Workflows cannot post to private
    /// channels as the Flow bot. Teams answers `202 Accepted`; the card appears once the
    /// workflow has run (see its run history in Power Automate if it does not).
    pub struct Msteams;

    category: Chat,
    // Teams throttles channel posts from webhooks to a few per second.
    rate_limit: RateLimit::CHAT_WEBHOOK,
    answers: Answers::status("Microsoft Teams", &[
        Means::gone(&["404"], "the workflow no longer exists"),
    ]),
    // A message is at most 28 KB, counted after Teams re-encodes the body as UTF-16
    // (two bytes a unit): 413s come from about 14 KB of UTF-8.
    limits: Limits::cut(&[
        Limit::body(28_000 / 2, Unit::Utf16),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "https://prod-00.westus.logic.azure.com:443/workflows/0123abcd/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=EXAMPLE-signature""#,
}

const OPTIONS: &[OptionSpec] = &[OptionSpec::url(
    "url",
    "The workflow's webhook URL (from Teams Workflows, with its `sig=` signature).",
)
.secret()];

/// Teams renders Adaptive Cards up to 1.5 on desktop and the web, less on some mobile
/// clients; nothing here needs more than 1.2 (`RichTextBlock`, `selectAction` on runs).
const CARD_VERSION: &str = "1.4";

impl Service for Msteams {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let message = job.message()?;
        let body = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card(&message),
            }],
        });
        Ok(vec![HttpRequest::post(job.url("url")?).json(body).into()])
    }
}

/// The Adaptive Card. User text goes into `RichTextBlock` runs, which render no Markdown
/// (and Teams never renders HTML), so it shows exactly as typed; only the fact values
/// are Markdown (for their links) and are escaped for it.
fn card(message: &Message) -> Value {
    let mut header = vec![
        rich_block(
            &Rich::text(&message.title),
            json!({"size": "Medium", "weight": "Bolder"}),
        ),
        rich_block(&message.headline, json!({})),
    ];
    header.extend(
        message
            .quote
            .iter()
            .map(|quote| rich_block(&Rich::text(quote), json!({"italic": true}))),
    );
    let mut body = vec![json!({
        "type": "Container",
        "style": container_style(message.color),
        "bleed": true,
        "items": header,
    })];
    body.extend(message.list.iter().map(|item| rich_block(item, json!({}))));
    if !message.fields.is_empty() {
        body.push(facts(message));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "fallbackText": message.summary,
        "body": body,
    });
    if let Some(url) = &message.url {
        card["actions"] =
            json!([{"type": "Action.OpenUrl", "title": "Open in Sprint.ly", "url": url}]);
    }
    card
}

/// A `RichTextBlock` of `rich`, each run styled with `style` (`italic`, `weight`, …).
fn rich_block(rich: &Rich, style: Value) -> Value {
    let runs: Vec<Value> = text_runs(rich)
        .into_iter()
        .map(|mut run| {
            if let (Some(run), Some(style)) = (run.as_object_mut(), style.as_object()) {
                run.extend(style.clone());
            }
            run
        })
        .collect();
    json!({"type": "RichTextBlock", "inlines": runs})
}

/// Rich text as Adaptive Card `TextRun`s, for a `RichTextBlock`. Text runs render no
/// Markdown, so user text goes in as it is; a link is a run that opens its URL.
fn text_runs(rich: &Rich) -> Vec<Value> {
    rich.0
        .iter()
        .map(|span| match span {
            Span::Text(text) => json!({"type": "TextRun", "text": text}),
            Span::Link { text, url } => json!({
                "type": "TextRun",
                "text": text,
                "selectAction": {"type": "Action.OpenUrl", "url": url},
            }),
        })
        .collect()
}

/// The Markdown subset of Adaptive Cards (`Fact.value`): bold, italic and links.
const ADAPTIVE_CARD: Dialect = Dialect::markdown(escape_adaptive_card);

/// HTML is never rendered in Adaptive Cards, so `<`, `>`, `&` stay as they are; only
/// the characters of the Markdown subset are escaped, as some Teams clients show
/// backslashes before other characters.
fn escape_adaptive_card(text: &str) -> String {
    escape::backslashed(text, "\\*_~`[]()")
}

fn facts(message: &Message) -> Value {
    let dialect = ADAPTIVE_CARD;
    let facts: Vec<Value> = message
        .fields
        .iter()
        .map(|field| json!({"title": field.name, "value": dialect.rich(&field.value)}))
        .collect();
    json!({"type": "FactSet", "separator": true, "facts": facts})
}

/// Adaptive Cards take no colours, only styles: the one closest to the item type's
/// Sprint.ly colour (defects red, tests blue, tasks grey, stories and deploys green).
fn container_style(color: &str) -> &'static str {
    match color.to_ascii_lowercase().as_str() {
        "#d94949" => "attention",
        "#5a96ab" => "accent",
        "#454545" => "emphasis",
        _ => "good",
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::{CaptureServer, MARKUP_TITLE, Reply, deliver_one, fixture_json};
    use serde_json::json;

    const SIGNATURE: &str = "S1gnature-0f-the-workflow";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_workflow_disables_the_target() {
        use lookout::Outcome;
        use lookout_testkit::outcome_of_reply;
        let url = format!(
            "https://prod-00.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig={SIGNATURE}"
        );
        let reply = Reply::status(404).body("{}");
        let item = fixture_json("item");
        let outcome =
            outcome_of_reply("msteams", json!({ "url": url }), &item, reply, SIGNATURE).await;
        let Outcome::Disabled { reason, status } = outcome else {
            panic!("not disabled: {outcome:?}");
        };
        assert_eq!(status, 404);
        assert!(
            reason.contains("Microsoft Teams: the workflow no longer exists"),
            "{reason}"
        );
    }

    async fn deliver(name: &str) -> serde_json::Value {
        let options = |server: &CaptureServer| {
            server.script("/workflows", [Reply::status(202)]);
            let path = "workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01";
            json!({"url": format!("{}/{path}&sig={SIGNATURE}", server.url())})
        };
        let (report, request) =
            deliver_one("msteams", options, &fixture_json(name), SIGNATURE).await;
        let report = serde_json::to_string(&report).unwrap();
        assert!(
            report.contains(r#""status":202"#),
            "Teams answers 202: {report}"
        );
        assert!(request.path.ends_with(SIGNATURE));
        request.json()
    }

    #[tokio::test]
    async fn an_item_arrives_as_an_adaptive_card_showing_its_title_as_typed() {
        let body = deliver("item-markup").await;
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        let header = &card["body"][0];
        assert_eq!(header["style"], "good", "stories are green");
        // The title is a plain text run: no Markdown, no HTML, no escaping needed.
        let title = &header["items"][0]["inlines"][0];
        assert_eq!(title["type"], "TextRun");
        assert_eq!(title["text"], format!("Story #1212: {MARKUP_TITLE}"));
        let link = &header["items"][1]["inlines"][1];
        assert_eq!(link["selectAction"]["url"], "http://sprint.ly/i/1/116550/");
        // Fact values are Markdown: escaped.
        let facts = &card["body"][1]["facts"];
        assert_eq!(facts[3]["title"], "Tags");
        assert_eq!(
            facts[3]["value"],
            "[<script>](https://sprint.ly/reports?tag=%3Cscript%3E), [a&b](https://sprint.ly/reports?tag=a%26b)"
        );
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(card["actions"][0]["url"], "http://sprint.ly/i/1/116550/");
    }

    #[tokio::test]
    async fn a_comment_is_quoted_in_italics() {
        let body = deliver("comment").await;
        let card = &body["attachments"][0]["content"];
        assert_eq!(card["body"][0]["style"], "emphasis", "tasks are grey");
        let quote = &card["body"][0]["items"][2]["inlines"][0];
        assert_eq!(quote["italic"], true);
        assert_eq!(quote["text"], "Hey guys, what's the status on this?");
    }

    #[test]
    fn fact_escaping_and_text_runs() {
        let escaped = super::escape_adaptive_card(r#"<b>&"x"</b> *b* [l](u) @everyone"#);
        assert_eq!(escaped, r#"<b>&"x"</b> \*b\* \[l\]\(u\) @everyone"#);
        let rich = lookout::Rich::text("<b>\"&\" ").push_link("a<b", "http://h/?q=\"1\"");
        let runs = super::text_runs(&rich);
        assert_eq!(runs[0]["text"], "<b>\"&\" ");
        assert_eq!(runs[1]["selectAction"]["url"], "http://h/?q=\"1\"");
    }
}
