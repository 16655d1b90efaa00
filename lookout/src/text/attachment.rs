//! Slack-style message attachments: the colour bar, a pretext, a linked title, text and
//! short fields. Slack invented the format; Mattermost and Rocket.Chat accept it as it
//! is in their incoming webhooks, each with its own Markdown, so the [`Dialect`] is the
//! service's.

use serde_json::{Map, Value, json};

use super::markup::Dialect;
use super::message::{Field, Message};

/// A Slack-style message attachment: the colour bar, `fallback` (the plain one-line
/// summary, for notifications), `pretext` (the headline), the title linking to the item,
/// `text` (quote and list) and short `fields`, user text escaped for `dialect`.
///
/// The title goes out only with its link, unescaped: Mattermost and Rocket.Chat show a
/// linked title as plain text (Mattermost renders an unlinked one as Markdown). Deploys
/// have no link and say it all in the pretext.
pub fn slack_attachment(message: &Message, dialect: Dialect) -> Map<String, Value> {
    let mut attachment = Map::new();
    attachment.insert("fallback".into(), message.summary.clone().into());
    attachment.insert("color".into(), message.color.into());
    attachment.insert("pretext".into(), dialect.rich(&message.headline).into());
    if let Some(url) = &message.url {
        attachment.insert("title".into(), message.title.clone().into());
        attachment.insert("title_link".into(), url.clone().into());
    }
    let details = message.details(&dialect);
    if !details.is_empty() {
        attachment.insert("text".into(), details.into());
    }
    if !message.fields.is_empty() {
        attachment.insert("fields".into(), slack_fields(&message.fields, dialect));
    }
    attachment
}

/// A Slack-compatible webhook body: `body` (the overrides a service passes through, and
/// its own keys) with `attachment` as its one attachment.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::escape;

    fn message() -> Message {
        Message::from_event(&crate::samples::edge_case("item-markup")).unwrap()
    }

    #[test]
    fn slack_attachment_keeps_the_linked_title_plain() {
        // A dialect that, like some platforms', keeps `@` from mentioning anyone.
        let dialect = Dialect::markdown(|t| {
            t.split('@')
                .map(escape::markdown)
                .collect::<Vec<_>>()
                .join("&#64;")
        });
        let attachment = slack_attachment(&message(), dialect);
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
}
