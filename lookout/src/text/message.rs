//! A platform-neutral rich message for an event: what happened (with links), the item's
//! fields, a quote, a list, a colour. Each service writes it in its platform's format
//! (Slack-style attachments, Discord embeds, Adaptive Cards, HTML…) from these parts,
//! in a [`Dialect`]; the whole-message renderings in the generic markups are here.

use super::budget::{Cut, fit, truncate};
use super::escape;
use super::markup::{Dialect, Rich};
use super::wording::{
    self, DEFAULT_COLOR, attributes, count_items, humanized, item_color, item_label, reports_link,
    short_name,
};
use crate::error::BuildError;
use crate::payload::{Attributes, Event, Item, User};

/// How long a quoted comment or description may be in rich messages.
pub const QUOTE_CHARS: usize = 500;

/// A named value shown beside the message (Assigned to, Status, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub value: Rich,
}

/// What an event says, ready to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The original's one-line message, plain text (notifications, fallbacks).
    pub summary: String,
    /// What happened, with links: `Joe S. created the story #12 - Title`.
    pub headline: Rich,
    /// A short title for cards and subjects: `Story #12: Title`.
    pub title: String,
    /// Where the title links to.
    pub url: Option<String>,
    /// The person who did it (short name).
    pub actor: String,
    /// A quote: the comment, or the item's description (plain text, trimmed).
    pub quote: Option<String>,
    pub fields: Vec<Field>,
    /// A list (the items of a deploy).
    pub list: Vec<Rich>,
    /// `#rrggbb`, by item type.
    pub color: &'static str,
}

impl Message {
    /// The message for an event; a payload problem fails (naming the JSON path) and an
    /// unknown model is skipped.
    /// For a digest, the digest's message ([`Message::digest`]).
    pub fn from_event(event: &Event) -> Result<Message, BuildError> {
        if let Some(events) = event.digest() {
            return Message::digest(events);
        }
        let summary = wording::one_line(event)?;
        let attributes = attributes(event)?;
        let product = Rich::link(
            &event.product.name,
            reports_link("product", &event.product.id.to_string()),
        );
        Ok(match attributes {
            Attributes::Item(item) => Message {
                headline: did(&item.created_by, &event.action, item),
                actor: short_name(&item.created_by),
                quote: quote(item.description.as_deref()),
                ..Message::about(item, summary, product)
            },
            Attributes::Comment(comment) => Message {
                headline: did(&comment.created_by, "commented on", &comment.item),
                actor: short_name(&comment.created_by),
                quote: quote(Some(&wording::clean_mentions(&comment.body))),
                ..Message::about(&comment.item, summary, product)
            },
            Attributes::Block(block) => Message {
                headline: did(&block.user, "indicated", &block.blocked)
                    .push(format!(" is blocked by the {} ", block.item.kind))
                    .append(item_link(&block.item)),
                actor: short_name(&block.user),
                ..Message::about(&block.item, summary, product)
            },
            Attributes::Favorite(favorite) => Message {
                headline: did(&favorite.user, "favorited", &favorite.item),
                actor: short_name(&favorite.user),
                ..Message::about(&favorite.item, summary, product)
            },
            Attributes::Deploy(deploy) => Message {
                summary,
                headline: Rich::text(format!(
                    "{} deployed {} to {}",
                    short_name(&deploy.user),
                    count_items(deploy.items.len()),
                    deploy.environment
                )),
                title: format!("Deploy to {}", deploy.environment),
                url: None,
                actor: short_name(&deploy.user),
                quote: None,
                fields: vec![Field {
                    name: "Product",
                    value: product,
                }],
                list: deploy
                    .items
                    .iter()
                    .map(|item| {
                        Rich::link(
                            format!("{} #{}", humanized(&item.kind), item.number),
                            &item.short_url,
                        )
                        .push(format!(": {}", item.title))
                    })
                    .collect(),
                color: DEFAULT_COLOR,
            },
            Attributes::Alert(alert) => Message {
                summary,
                headline: Rich::text(&alert.title),
                title: alert.title.clone(),
                url: None,
                actor: "Lookout".to_owned(),
                quote: Some(alert.body.clone()),
                fields: vec![Field {
                    name: "Product",
                    value: product,
                }],
                list: Vec::new(),
                color: wording::ALERT_COLOR,
            },
            Attributes::Other(_) => return Err(BuildError::no_message_for(event)),
        })
    }

    /// The parts every item-centred message shares.
    fn about(item: &Item, summary: String, product: Rich) -> Message {
        Message {
            summary,
            headline: Rich::default(),
            title: format!("{} #{}: {}", humanized(&item.kind), item.number, item.title),
            url: Some(item.short_url.clone()),
            actor: String::new(),
            quote: None,
            fields: item_fields(item, product),
            list: Vec::new(),
            color: item_color(&item.kind),
        }
    }

    /// The message with the parts that may shrink cut as `cut` asks: the quote, each
    /// field's value, and the list (as many items as fit, then `… and 12 more`). The
    /// event's own long texts (title, description, comment) are cut before this, by the
    /// fitting pass.
    pub fn cut(mut self, cut: Cut) -> Message {
        let Some(room) = cut.parts else {
            return self;
        };
        self.quote = self.quote.map(|q| fit(&q, room)).filter(|q| !q.is_empty());
        for field in &mut self.fields {
            field.value = field.value.fit(room);
        }
        self.list = fit_list(self.list, room);
        self
    }

    /// The whole message as HTML (`<p>`, `<blockquote>`, `<ul>`): email, Matrix.
    pub fn html(&self) -> String {
        let html_of = |rich| Dialect::HTML.rich(rich);
        let mut html = format!("<p>{}</p>", html_of(&self.headline));
        if let Some(quote) = &self.quote {
            html.push_str(&format!(
                "<blockquote>{}</blockquote>",
                escape::html(quote).replace('\n', "<br>")
            ));
        }
        if !self.list.is_empty() {
            let items: String = self
                .list
                .iter()
                .map(|i| format!("<li>{}</li>", html_of(i)))
                .collect();
            html.push_str(&format!("<ul>{items}</ul>"));
        }
        if !self.fields.is_empty() {
            html.push_str(&format!("<p>{}</p>", self.html_fields().join("<br>")));
        }
        html
    }

    /// The fields in HTML, one `<b>Name:</b> value` each: email, Matrix, and the HTML
    /// subsets of Telegram and Pushover.
    pub fn html_fields(&self) -> Vec<String> {
        self.fields
            .iter()
            .map(|f| format!("<b>{}:</b> {}", f.name, Dialect::HTML.rich(&f.value)))
            .collect()
    }

    /// The list in HTML without list tags, one `• item` each: for the HTML subsets that
    /// have none (Telegram, Pushover).
    pub fn html_bullets(&self) -> Vec<String> {
        self.list
            .iter()
            .map(|item| format!("• {}", Dialect::HTML.rich(item)))
            .collect()
    }

    /// The whole message in a Markdown `dialect`, one block per part (`**Name:**`
    /// fields on one line): ntfy, Zulip.
    pub fn markdown(&self, dialect: &Dialect) -> String {
        let mut md = dialect.rich(&self.headline);
        if let Some(quote) = &self.quote {
            md.push_str("\n\n");
            md.push_str(&quote_lines(&dialect.text(quote)));
        }
        for item in &self.list {
            md.push_str(&format!("\n* {}", dialect.rich(item)));
        }
        if !self.fields.is_empty() {
            let fields: Vec<String> = self
                .fields
                .iter()
                .map(|f| format!("**{}:** {}", f.name, dialect.rich(&f.value)))
                .collect();
            md.push_str("\n\n");
            md.push_str(&fields.join(" · "));
        }
        md
    }

    /// The whole message as plain text, links written out: email, SMS-like targets.
    pub fn plain(&self) -> String {
        self.plain_in(&Dialect::PLAIN_WITH_URLS)
    }

    /// The whole message as plain text in a plain-text `dialect` ([`Dialect::plain`]):
    /// user text escaped as the platform needs (mentions, tags), links written out;
    /// field values show their links' text only.
    pub fn plain_in(&self, dialect: &Dialect) -> String {
        let mut text = dialect.rich(&self.headline);
        if let Some(quote) = &self.quote {
            text.push_str("\n\n");
            text.push_str(&quote_lines(&dialect.text(quote)));
        }
        for item in &self.list {
            text.push_str(&format!("\n- {}", dialect.rich(item)));
        }
        for field in &self.fields {
            let value = dialect.rich_without_links(&field.value);
            text.push_str(&format!("\n{}: {value}", field.name));
        }
        text
    }

    /// What the message says below its headline, in a Markdown `dialect`: its quote
    /// and its list (`- ` lines), a blank line apart (empty when it has neither).
    pub fn details(&self, dialect: &Dialect) -> String {
        let mut parts = Vec::new();
        if let Some(quote) = &self.quote {
            parts.push(dialect.quote(quote));
        }
        if !self.list.is_empty() {
            parts.push(dialect.list_lines(&self.list).join("\n"));
        }
        parts.join("\n\n")
    }
}

/// As many of `list`'s items as fit in `room` shown characters, and a last one saying
/// how many more there are.
fn fit_list(list: Vec<Rich>, room: usize) -> Vec<Rich> {
    let mut used = 0;
    let shown = list
        .iter()
        .take_while(|item| {
            used += item.shown_chars();
            used <= room
        })
        .count();
    if shown == list.len() {
        return list;
    }
    let hidden = list.len() - shown;
    let mut kept: Vec<Rich> = list.into_iter().take(shown).collect();
    kept.push(Rich::text(format!("… and {hidden} more")));
    kept
}

/// Prefixes each line with `> `.
fn quote_lines(text: &str) -> String {
    text.lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn quote(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| truncate(t, QUOTE_CHARS))
}

/// `Joe S. favorited the story #12 - Title`, the item linked.
fn did(actor: &User, verb: &str, item: &Item) -> Rich {
    let kind = &item.kind;
    Rich::text(format!("{} {verb} the {kind} ", short_name(actor))).append(item_link(item))
}

/// `#12 - Title`, linked to the item.
pub fn item_link(item: &Item) -> Rich {
    Rich::link(item_label(item), &item.short_url)
}

/// The item fields Sprint.ly's Slack messages showed, in their order, each only when
/// present: Assigned to, Status, Score, Tags, and always Product.
pub fn item_fields(item: &Item, product: Rich) -> Vec<Field> {
    let mut fields = Vec::new();
    if let Some(assignee) = &item.assigned_to {
        fields.push(Field {
            name: "Assigned to",
            value: Rich::link(
                short_name(assignee),
                reports_link("assignee", &assignee.id.to_string()),
            ),
        });
    }
    if let Some(status) = item.status.as_deref().filter(|s| !s.is_empty()) {
        fields.push(Field {
            name: "Status",
            value: Rich::link(humanized(status), reports_link("status", status)),
        });
    }
    if let Some(score) = item.score.as_deref().filter(|s| !s.is_empty()) {
        fields.push(Field {
            name: "Score",
            value: Rich::text(score),
        });
    }
    if !item.tags.is_empty() {
        let tags = item
            .tags
            .iter()
            .map(|t| Rich::link(t, reports_link("tag", t)));
        fields.push(Field {
            name: "Tags",
            value: Rich::join(tags, ", "),
        });
    }
    fields.push(Field {
        name: "Product",
        value: product,
    });
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookouts_own_alerts_read_as_a_title_and_a_paragraph() {
        let event = Event::parse(
            r#"{"model":"Alert","action":"disabled","product":{"id":0,"name":"p1"},
                "attributes":{"title":"Lookout disabled a target","body":"It kept failing.",
                              "instance":"hook"}}"#,
        )
        .unwrap();
        let message = Message::from_event(&event).unwrap();
        assert_eq!(message.title, "Lookout disabled a target");
        assert_eq!(message.quote.as_deref(), Some("It kept failing."));
        assert_eq!(message.actor, "Lookout");
        assert_eq!(message.color, wording::ALERT_COLOR);
        assert_eq!(
            message.summary,
            "Lookout disabled a target: It kept failing."
        );
        let broken = Event::parse(
            r#"{"model":"Alert","product":{"id":0,"name":"p1"},"attributes":{"title":"t"}}"#,
        )
        .unwrap();
        let err = Message::from_event(&broken).unwrap_err().to_string();
        assert!(err.contains("attributes"), "{err}");
    }

    fn message() -> Message {
        Message {
            summary: String::new(),
            headline: Rich::text("<b>&\"x\" ").push_link("#1", "http://x/1"),
            title: String::new(),
            url: None,
            actor: String::new(),
            quote: Some("line <1>\nline *2*".into()),
            fields: vec![Field {
                name: "Status",
                value: Rich::text("Done"),
            }],
            list: vec![Rich::text("one"), Rich::text("two")],
            color: DEFAULT_COLOR,
        }
    }

    #[test]
    fn renders_whole_messages_in_the_generic_markups() {
        let message = message();
        assert_eq!(
            message.html(),
            "<p>&lt;b&gt;&amp;&quot;x&quot; <a href=\"http://x/1\">#1</a></p>\
             <blockquote>line &lt;1&gt;<br>line *2*</blockquote>\
             <ul><li>one</li><li>two</li></ul><p><b>Status:</b> Done</p>"
        );
        assert_eq!(
            message.markdown(&Dialect::COMMONMARK),
            "&lt;b&gt;&amp;\"x\" [\\#1](http://x/1)\n\n\
             > line &lt;1&gt;\n> line \\*2\\*\n* one\n* two\n\n**Status:** Done"
        );
        assert_eq!(
            message.plain(),
            "<b>&\"x\" #1 (http://x/1)\n\n> line <1>\n> line *2*\n- one\n- two\nStatus: Done"
        );
        assert_eq!(
            message.details(&Dialect::COMMONMARK),
            "> line &lt;1&gt;\n> line \\*2\\*\n\n- one\n- two"
        );
    }

    #[test]
    fn plain_text_follows_its_dialect_everywhere() {
        // A platform where `@name` mentions someone: user text must not.
        fn no_mentions(text: &str) -> String {
            text.replace('@', "@\u{200B}")
        }
        let mut message = message();
        message.headline = Rich::text("@all ").push_link("@here", "http://x/1");
        message.quote = Some("ping @ops".into());
        message.list = vec![Rich::text("@one")];
        message.fields[0].value = Rich::link("@lead", "http://x/2");
        assert_eq!(
            message.plain_in(&Dialect::plain(no_mentions)),
            "@\u{200B}all @\u{200B}here (http://x/1)\n\n> ping @\u{200B}ops\n\
             - @\u{200B}one\nStatus: @\u{200B}lead"
        );
        assert_eq!(
            message.plain(),
            message.plain_in(&Dialect::PLAIN_WITH_URLS),
            "plain() is the dialect that leaves text as it is"
        );
    }
}
