//! A platform-neutral rich message for an event: what happened (with links), the item's
//! fields, a quote, a list, a colour. Each chat service renders it in its own format
//! (Slack attachments, Discord embeds, Adaptive Cards, HTML…) through the renderers here,
//! so the wording and the escaping live in one place.

use crate::format::{
    self, DEFAULT_COLOR, attributes, capitalized, count_items, escape, full_name, item_color,
    item_label, reports_link, short_name, status_words,
};
use crate::payload::{Attributes, Event, Item};
use crate::service::BuildError;

/// How long a quoted comment or description may be in rich messages.
pub const QUOTE_CHARS: usize = 500;

/// A piece of text, plain or linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Text(String),
    Link { text: String, url: String },
}

/// A line of text with links in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rich(pub Vec<Span>);

impl Rich {
    pub fn text(text: impl Into<String>) -> Rich {
        Rich(vec![Span::Text(text.into())])
    }
    pub fn link(text: impl Into<String>, url: impl Into<String>) -> Rich {
        Rich(vec![Span::Link {
            text: text.into(),
            url: url.into(),
        }])
    }
    pub fn push(mut self, text: impl Into<String>) -> Rich {
        self.0.push(Span::Text(text.into()));
        self
    }
    pub fn push_link(mut self, text: impl Into<String>, url: impl Into<String>) -> Rich {
        self.0.push(Span::Link {
            text: text.into(),
            url: url.into(),
        });
        self
    }
    /// Appends a link to an item: `#12 - Title`, to its short URL.
    pub fn push_item(self, item: &Item) -> Rich {
        self.push_link(item_label(item), &item.short_url)
    }

    /// Joins several lines of rich text with a separator.
    pub fn join(parts: impl IntoIterator<Item = Rich>, separator: &str) -> Rich {
        let mut out = Rich::default();
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                out.0.push(Span::Text(separator.to_owned()));
            }
            out.0.extend(part.0);
        }
        out
    }

    /// Without markup: links become their text.
    pub fn plain(&self) -> String {
        self.render(|t| t.to_owned(), |text, _| text.to_owned())
    }
    /// Without markup, links written out: `text (url)`.
    pub fn plain_with_urls(&self) -> String {
        self.render(|t| t.to_owned(), |text, url| format!("{text} ({url})"))
    }
    /// HTML, user text escaped.
    pub fn html(&self) -> String {
        self.render(escape::html, |text, url| {
            format!(
                "<a href=\"{}\">{}</a>",
                escape::html(url),
                escape::html(text)
            )
        })
    }
    /// CommonMark-style Markdown, user text escaped.
    pub fn markdown(&self) -> String {
        self.markdown_in(Flavor::CommonMark)
    }
    /// Zulip Markdown, user text escaped the way Zulip needs ([`escape::zulip`]).
    pub fn zulip(&self) -> String {
        self.markdown_in(Flavor::Zulip)
    }
    /// Slack mrkdwn: `<url|text>` links.
    pub fn slack(&self) -> String {
        self.render(escape::slack, |text, url| {
            format!("<{}|{}>", escape::slack_url(url), escape::slack(text))
        })
    }

    fn markdown_in(&self, flavor: Flavor) -> String {
        self.render(
            |text| flavor.text(text),
            |text, url| {
                format!(
                    "[{}]({})",
                    flavor.link_text(text),
                    escape::markdown_url(url)
                )
            },
        )
    }

    fn render(&self, text: impl Fn(&str) -> String, link: impl Fn(&str, &str) -> String) -> String {
        self.0
            .iter()
            .map(|span| match span {
                Span::Text(t) => text(t),
                Span::Link { text, url } => link(text, url),
            })
            .collect()
    }
}

/// The Markdown dialects messages render in. They share the syntax used here (links,
/// `**bold**`, `> ` quotes, `* ` lists) and differ in how user text is escaped.
#[derive(Debug, Clone, Copy)]
enum Flavor {
    CommonMark,
    Zulip,
}

impl Flavor {
    fn text(self, text: &str) -> String {
        match self {
            Flavor::CommonMark => escape::markdown(text),
            Flavor::Zulip => escape::zulip(text),
        }
    }
    fn link_text(self, text: &str) -> String {
        match self {
            Flavor::CommonMark => escape::markdown_link_text(text),
            Flavor::Zulip => escape::zulip(text),
        }
    }
}

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
    pub fn from_event(event: &Event) -> Result<Message, BuildError> {
        let summary = format::one_line(event)?;
        let attributes = attributes(event)?;
        let product = Rich::link(
            &event.product.name,
            reports_link("product", &event.product.id.to_string()),
        );
        Ok(match attributes {
            Attributes::Item(item) => Message {
                headline: Rich::text(format!(
                    "{} {} the {} ",
                    short_name(&item.created_by),
                    event.action,
                    item.kind
                ))
                .push_item(item),
                actor: short_name(&item.created_by),
                quote: quote(item.description.as_deref()),
                ..Message::about(item, summary, product)
            },
            Attributes::Comment(comment) => Message {
                headline: Rich::text(format!(
                    "{} commented on the {} ",
                    short_name(&comment.created_by),
                    comment.item.kind
                ))
                .push_item(&comment.item),
                actor: short_name(&comment.created_by),
                quote: quote(Some(&format::clean_mentions(&comment.body))),
                ..Message::about(&comment.item, summary, product)
            },
            Attributes::Block(block) => Message {
                headline: Rich::text(format!(
                    "{} indicated the {} ",
                    short_name(&block.user),
                    block.blocked.kind
                ))
                .push_item(&block.blocked)
                .push(format!(" is blocked by the {} ", block.item.kind))
                .push_item(&block.item),
                actor: short_name(&block.user),
                ..Message::about(&block.item, summary, product)
            },
            Attributes::Favorite(favorite) => Message {
                headline: Rich::text(format!(
                    "{} favorited the {} ",
                    short_name(&favorite.user),
                    favorite.item.kind
                ))
                .push_item(&favorite.item),
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
                            format!("{} #{}", capitalized(&item.kind), item.number),
                            &item.short_url,
                        )
                        .push(format!(": {}", item.title))
                    })
                    .collect(),
                color: DEFAULT_COLOR,
            },
            Attributes::Other(_) => return Err(BuildError::no_message_for(event)),
        })
    }

    /// The parts every item-centred message shares.
    fn about(item: &Item, summary: String, product: Rich) -> Message {
        Message {
            summary,
            headline: Rich::default(),
            title: format!(
                "{} #{}: {}",
                capitalized(&item.kind),
                item.number,
                item.title
            ),
            url: Some(item.short_url.clone()),
            actor: String::new(),
            quote: None,
            fields: item_fields(item, product),
            list: Vec::new(),
            color: item_color(&item.kind),
        }
    }

    /// The whole message as HTML (`<p>`, `<blockquote>`, `<ul>`): email, Matrix.
    pub fn html(&self) -> String {
        let mut html = format!("<p>{}</p>", self.headline.html());
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
                .map(|i| format!("<li>{}</li>", i.html()))
                .collect();
            html.push_str(&format!("<ul>{items}</ul>"));
        }
        if !self.fields.is_empty() {
            let fields: Vec<String> = self
                .fields
                .iter()
                .map(|f| format!("<b>{}:</b> {}", f.name, f.value.html()))
                .collect();
            html.push_str(&format!("<p>{}</p>", fields.join("<br>")));
        }
        html
    }

    /// The whole message in the HTML subset Telegram accepts (`parse_mode: HTML`): only
    /// `b`, `i`, `u`, `s`, `a`, `code`, `pre` and `blockquote` are allowed there, and line
    /// breaks are plain newlines, so paragraphs and lists are written with `\n` and `•`.
    /// User text is escaped as in [`Message::html`] (Telegram decodes `&lt;`, `&gt;`,
    /// `&amp;`, `&quot;` and numeric entities such as `&#39;`).
    pub fn telegram_html(&self) -> String {
        let mut parts = vec![self.headline.html()];
        if let Some(quote) = &self.quote {
            parts.push(format!("<blockquote>{}</blockquote>", escape::html(quote)));
        }
        if !self.list.is_empty() {
            let items: Vec<String> = self
                .list
                .iter()
                .map(|i| format!("• {}", i.html()))
                .collect();
            parts.push(items.join("\n"));
        }
        if !self.fields.is_empty() {
            let fields: Vec<String> = self
                .fields
                .iter()
                .map(|f| format!("<b>{}:</b> {}", f.name, f.value.html()))
                .collect();
            parts.push(fields.join("\n"));
        }
        parts.join("\n\n")
    }

    /// The whole message as Markdown, one block per part: Rocket.Chat, ntfy.
    pub fn markdown(&self) -> String {
        self.markdown_in(Flavor::CommonMark)
    }

    /// The whole message as Zulip Markdown: the same blocks as [`Message::markdown`],
    /// user text escaped the way Zulip needs ([`escape::zulip`]).
    pub fn zulip(&self) -> String {
        self.markdown_in(Flavor::Zulip)
    }

    fn markdown_in(&self, flavor: Flavor) -> String {
        let mut md = self.headline.markdown_in(flavor);
        if let Some(quote) = &self.quote {
            md.push_str("\n\n");
            md.push_str(&quote_lines(&flavor.text(quote)));
        }
        for item in &self.list {
            md.push_str(&format!("\n* {}", item.markdown_in(flavor)));
        }
        if !self.fields.is_empty() {
            let fields: Vec<String> = self
                .fields
                .iter()
                .map(|f| format!("**{}:** {}", f.name, f.value.markdown_in(flavor)))
                .collect();
            md.push_str("\n\n");
            md.push_str(&fields.join(" · "));
        }
        md
    }

    /// The whole message as plain text, links written out: email, SMS-like targets.
    pub fn plain(&self) -> String {
        let mut text = self.headline.plain_with_urls();
        if let Some(quote) = &self.quote {
            text.push_str("\n\n");
            text.push_str(&quote_lines(quote));
        }
        for item in &self.list {
            text.push_str(&format!("\n- {}", item.plain_with_urls()));
        }
        for field in &self.fields {
            text.push_str(&format!("\n{}: {}", field.name, field.value.plain()));
        }
        text
    }
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
        .map(|t| format::truncate(t, QUOTE_CHARS))
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
            value: Rich::link(status_words(status), reports_link("status", status)),
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

/// The full name of the person behind an event (email senders, Flowdock).
pub fn actor_full_name(event: &Event) -> Option<String> {
    Some(match event.attributes().ok()? {
        Attributes::Item(i) => full_name(&i.created_by),
        Attributes::Comment(c) => full_name(&c.created_by),
        Attributes::Block(b) => full_name(&b.user),
        Attributes::Favorite(f) => full_name(&f.user),
        Attributes::Deploy(d) => full_name(&d.user),
        Attributes::Other(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_links_and_escapes_text() {
        let rich = Rich::text("<b>&\"x\" ").push_link("#1 - a|b", "http://x/1");
        assert_eq!(
            rich.html(),
            "&lt;b&gt;&amp;&quot;x&quot; <a href=\"http://x/1\">#1 - a|b</a>"
        );
        assert_eq!(rich.slack(), "&lt;b&gt;&amp;\"x\" <http://x/1|#1 - a|b>");
        assert_eq!(
            rich.markdown(),
            "&lt;b&gt;&amp;\"x\" [\\#1 \\- a\\|b](http://x/1)"
        );
        assert_eq!(rich.plain(), "<b>&\"x\" #1 - a|b");
    }

    #[test]
    fn zulip_is_markdown_with_its_own_escaping() {
        let rich = Rich::text("<b>&\"x\" ").push_link("#1 - *a*", "http://x/(1)");
        assert_eq!(
            rich.zulip(),
            "&lt;b&gt;&amp;\"x\" [&#35;1 - &#42;a&#42;](http://x/%281%29)"
        );
    }

    #[test]
    fn telegram_html_uses_only_telegram_tags() {
        let message = Message {
            summary: String::new(),
            headline: Rich::text("<b>&\"x\" ").push_link("#1", "http://x/1"),
            title: String::new(),
            url: None,
            actor: String::new(),
            quote: Some("line <1>\nline 2".into()),
            fields: vec![Field {
                name: "Status",
                value: Rich::text("Done"),
            }],
            list: vec![Rich::text("one"), Rich::text("two")],
            color: DEFAULT_COLOR,
        };
        assert_eq!(
            message.telegram_html(),
            "&lt;b&gt;&amp;&quot;x&quot; <a href=\"http://x/1\">#1</a>\n\n\
             <blockquote>line &lt;1&gt;\nline 2</blockquote>\n\n\
             • one\n• two\n\n\
             <b>Status:</b> Done"
        );
    }
}
