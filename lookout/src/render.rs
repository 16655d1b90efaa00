//! Renderings of a [`Message`] that several chat services share: Markdown dialects (the
//! same structure, each with its platform's escaping), Slack-style attachments
//! (Mattermost, Rocket.Chat), HTML for renderers with a small tag whitelist (Google Chat
//! cards) and Adaptive Card text runs (Microsoft Teams).
//!
//! Services build their platform's JSON from these pieces; the wording stays in
//! [`Message`] and the escaping in [`crate::format::escape`].

use serde_json::{Map, Value, json};

use crate::format::escape;
use crate::message::{Field, Message, Rich, Span};

/// A Markdown dialect: `[text](url)` links, `> ` quotes and `- ` lists, with user text
/// escaped the way one platform's renderer needs it.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    escape: fn(&str) -> String,
}

impl Dialect {
    /// Discord (embed titles, descriptions and field values).
    pub const DISCORD: Dialect = Dialect::new(escape::discord);
    /// Mattermost (message text, attachment pretext, text and field values).
    pub const MATTERMOST: Dialect = Dialect::new(escape::mattermost);
    /// Rocket.Chat attachments (pretext, text and field values).
    pub const ROCKETCHAT: Dialect = Dialect::new(escape::rocketchat);
    /// The Adaptive Card subset (Microsoft Teams `FactSet` values).
    pub const ADAPTIVE_CARD: Dialect = Dialect::new(escape::adaptive_card);

    /// A dialect escaping user text with `escape`.
    pub const fn new(escape: fn(&str) -> String) -> Dialect {
        Dialect { escape }
    }

    /// User text, escaped.
    pub fn text(&self, text: &str) -> String {
        (self.escape)(text)
    }

    /// Rich text: text escaped, links as `[text](url)`.
    pub fn rich(&self, rich: &Rich) -> String {
        rich.0
            .iter()
            .map(|span| match span {
                Span::Text(text) => self.text(text),
                Span::Link { text, url } => {
                    format!("[{}]({})", self.text(text), escape::markdown_url(url))
                }
            })
            .collect()
    }

    /// A block quote: every line of `text` escaped and prefixed with `> `.
    pub fn quote(&self, text: &str) -> String {
        text.lines()
            .map(|line| format!("> {}", self.text(line)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A bulleted list, one `- ` line per item.
    pub fn list(&self, items: &[Rich]) -> String {
        items
            .iter()
            .map(|item| format!("- {}", self.rich(item)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What a message says below its headline: its quote and its list, a blank line
    /// apart (empty when it has neither).
    pub fn details(&self, message: &Message) -> String {
        let mut parts = Vec::new();
        if let Some(quote) = &message.quote {
            parts.push(self.quote(quote));
        }
        if !message.list.is_empty() {
            parts.push(self.list(&message.list));
        }
        parts.join("\n\n")
    }
}

/// A Slack-style message attachment, as Mattermost and Rocket.Chat take it: the colour
/// bar, `fallback` (the plain one-line summary, for notifications), `pretext` (the
/// headline), the title linking to the item, `text` (quote and list) and short `fields`,
/// user text escaped for `dialect`.
///
/// The title goes out only with its link, unescaped: both platforms show a linked title
/// as plain text (Mattermost renders an unlinked one as Markdown). Deploys have no link
/// and say it all in the pretext.
pub fn slack_attachment(message: &Message, dialect: Dialect) -> Map<String, Value> {
    let mut attachment = Map::new();
    attachment.insert("fallback".into(), message.summary.clone().into());
    attachment.insert("color".into(), message.color.into());
    attachment.insert("pretext".into(), dialect.rich(&message.headline).into());
    if let Some(url) = &message.url {
        attachment.insert("title".into(), message.title.clone().into());
        attachment.insert("title_link".into(), url.clone().into());
    }
    let details = dialect.details(message);
    if !details.is_empty() {
        attachment.insert("text".into(), details.into());
    }
    if !message.fields.is_empty() {
        attachment.insert("fields".into(), slack_fields(&message.fields, dialect));
    }
    attachment
}

/// A Slack-compatible webhook body (Mattermost, Rocket.Chat): `body` (the overrides a
/// service passes through, and its own keys) with `attachment` as its one attachment.
pub fn with_attachment(mut body: Map<String, Value>, attachment: Map<String, Value>) -> Value {
    body.insert("attachments".into(), Value::Array(vec![attachment.into()]));
    body.into()
}

/// Slack-style attachment fields, each `short` (shown side by side).
pub fn slack_fields(fields: &[Field], dialect: Dialect) -> Value {
    fields
        .iter()
        .map(|field| {
            json!({
                "title": dialect.text(field.name),
                "value": dialect.rich(&field.value),
                "short": true,
            })
        })
        .collect()
}

/// Rich text as HTML for renderers that accept a few tags only (Google Chat cards):
/// text through [`escape::html_text`], links as `<a href>`.
pub fn simple_html(rich: &Rich) -> String {
    rich.0
        .iter()
        .map(|span| match span {
            Span::Text(text) => escape::html_text(text),
            Span::Link { text, url } => format!(
                "<a href=\"{}\">{}</a>",
                escape::html(url),
                escape::html_text(text)
            ),
        })
        .collect()
}

/// Rich text as Adaptive Card `TextRun`s, for a `RichTextBlock`. Text runs render no
/// Markdown, so user text goes in as it is; a link is a run that opens its URL.
pub fn text_runs(rich: &Rich) -> Vec<Value> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message::from_event(&crate::samples::edge_case("item-markup")).unwrap()
    }

    #[test]
    fn dialects_escape_text_and_keep_links() {
        let rich = Rich::text("*a* ").push_link("[x]", "http://h/a b");
        assert_eq!(
            Dialect::DISCORD.rich(&rich),
            r"\*a\* [\[x\]](http://h/a%20b)"
        );
        assert_eq!(Dialect::ROCKETCHAT.quote("a\n*b*"), "> a\n> \\*b\\*");
        assert_eq!(
            Dialect::MATTERMOST.list(&[Rich::text("@all"), Rich::text("b")]),
            "- &#64;all\n- b"
        );
    }

    #[test]
    fn slack_attachment_keeps_the_linked_title_plain() {
        let attachment = slack_attachment(&message(), Dialect::MATTERMOST);
        assert_eq!(attachment["color"], "#96be60", "stories are green");
        let title = attachment["title"].as_str().unwrap();
        assert!(
            title.starts_with(r#"Story #1212: <b>&"x"</b> *bold*"#),
            "{title}"
        );
        let pretext = attachment["pretext"].as_str().unwrap();
        assert!(
            pretext.contains(r"[\#1212 \- &lt;b&gt;&amp;"),
            "pretext escaped: {pretext}"
        );
        assert!(!pretext.contains("@everyone"), "{pretext}");
        let tags = &attachment["fields"][3];
        assert_eq!(tags["title"], "Tags");
        assert_eq!(
            tags["value"],
            "[&lt;script&gt;](https://sprint.ly/reports?tag=%3Cscript%3E), \
             [a&amp;b](https://sprint.ly/reports?tag=a%26b)"
        );
    }

    #[test]
    fn simple_html_and_text_runs() {
        let rich = Rich::text("<b>\"&\" ").push_link("a<b", "http://h/?q=\"1\"");
        assert_eq!(
            simple_html(&rich),
            "&lt;b&gt;\"&amp;\" <a href=\"http://h/?q=&quot;1&quot;\">a&lt;b</a>"
        );
        let runs = text_runs(&rich);
        assert_eq!(runs[0]["text"], "<b>\"&\" ");
        assert_eq!(runs[1]["selectAction"]["url"], "http://h/?q=\"1\"");
    }
}
