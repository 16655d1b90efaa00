//! Rich text (text with links) and the markups it is written in. A [`Dialect`] is two
//! choices, how user text is escaped and how a link is written; the engine defines the
//! generic ones (plain text, HTML, CommonMark, mrkdwn) and a service whose platform
//! speaks its own defines it in its file in a line or two:
//!
//! ```
//! use lookout::text::{Dialect, escape};
//!
//! const DISCORD: Dialect = Dialect::markdown(escape_discord);
//!
//! fn escape_discord(text: &str) -> String {
//!     escape::backslashed(text, "\\*_~`|<>#-+[]()@")
//! }
//! # assert_eq!(DISCORD.text("*a*"), r"\*a\*");
//! ```

use super::escape;

/// A piece of text, plain or linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Text(String),
    Link { text: String, url: String },
}

impl Span {
    /// The text it shows.
    fn shown(&self) -> &str {
        match self {
            Span::Text(text) | Span::Link { text, .. } => text,
        }
    }
}

/// A line of text with links in it, as yet in no markup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rich(pub Vec<Span>);

impl Rich {
    pub fn text(text: impl Into<String>) -> Rich {
        Rich(vec![Span::Text(text.into())])
    }
    pub fn link(text: impl Into<String>, url: impl Into<String>) -> Rich {
        Rich::default().push_link(text, url)
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

    /// `self` followed by `other`.
    pub fn append(mut self, other: Rich) -> Rich {
        self.0.extend(other.0);
        self
    }

    /// How many characters it shows (link texts, not their URLs).
    pub fn shown_chars(&self) -> usize {
        self.0.iter().map(|span| span.shown().chars().count()).sum()
    }

    /// At most about `max` shown characters of it: whole spans while they fit, a text
    /// cut short (never a link: a link is kept whole or left out), and, when links were
    /// left out, how many (`a, b, … and 280 more`). The first span is always kept, so
    /// that a field keeps what it is about.
    pub fn fit(&self, max: usize) -> Rich {
        if self.shown_chars() <= max {
            return self.clone();
        }
        let mut kept = Rich::default();
        let mut used = 0;
        let mut spans = self.0.iter().peekable();
        while let Some(span) =
            spans.next_if(|s| kept.0.is_empty() || used + s.shown().chars().count() <= max)
        {
            used += span.shown().chars().count();
            kept.0.push(span.clone());
        }
        let hidden_links = spans
            .clone()
            .filter(|s| matches!(s, Span::Link { .. }))
            .count();
        match spans.next() {
            _ if hidden_links > 0 => {
                let space = if kept.ends_with_space() { "" } else { " " };
                kept.push(format!("{space}… and {hidden_links} more"))
            }
            Some(Span::Text(text)) => {
                let room = max.saturating_sub(used);
                kept.push(super::budget::fit(text, room.max(1)))
            }
            _ => kept,
        }
    }

    fn ends_with_space(&self) -> bool {
        self.0
            .last()
            .is_some_and(|span| span.shown().ends_with(char::is_whitespace))
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
}

/// How user text is escaped and links are written in one markup.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    escape: fn(&str) -> String,
    /// The link, from its text (already escaped) and its URL (as it is).
    link: fn(&str, &str) -> String,
}

impl Dialect {
    /// Plain text: links become their text.
    pub const PLAIN: Dialect = Dialect::new(str::to_owned, |text, _| text.to_owned());
    /// Plain text, links written out: `text (url)`.
    pub const PLAIN_WITH_URLS: Dialect = Dialect::plain(str::to_owned);
    /// HTML: text through [`escape::html`], links as `<a href>`.
    pub const HTML: Dialect = Dialect::html(escape::html);
    /// CommonMark: text through [`escape::markdown`], links as `[text](url)`.
    pub const COMMONMARK: Dialect = Dialect::markdown(escape::markdown);
    /// Slack-style mrkdwn (Slack, and the attachments of platforms that copied it):
    /// text through [`escape::html_text`], links as `<url|text>`.
    pub const MRKDWN: Dialect = Dialect::new(escape::html_text, |text, url| {
        format!("<{}|{text}>", escape::mrkdwn_url(url))
    });

    /// A dialect escaping user text with `escape` and writing links with `link` (which
    /// gets the escaped text and the URL as it is).
    pub const fn new(escape: fn(&str) -> String, link: fn(&str, &str) -> String) -> Dialect {
        Dialect { escape, link }
    }

    /// A plain-text dialect: links written out as `text (url)`, user text escaped with
    /// `escape` (for platforms with no markup but their own mentions or tags, which
    /// user text must not make: `@name` on Mastodon). See [`Message::plain_in`](super::Message::plain_in).
    pub const fn plain(escape: fn(&str) -> String) -> Dialect {
        Dialect::new(escape, |text, url| format!("{text} ({url})"))
    }

    /// A Markdown dialect: `[text](url)` links, user text escaped with `escape`.
    pub const fn markdown(escape: fn(&str) -> String) -> Dialect {
        Dialect::new(escape, |text, url| {
            format!("[{text}]({})", escape::markdown_url(url))
        })
    }

    /// An HTML dialect: `<a href>` links (the URL through [`escape::html`]), user text
    /// escaped with `escape`.
    pub const fn html(escape: fn(&str) -> String) -> Dialect {
        Dialect::new(escape, |text, url| {
            format!("<a href=\"{}\">{text}</a>", escape::html(url))
        })
    }

    /// User text, escaped.
    pub fn text(&self, text: &str) -> String {
        (self.escape)(text)
    }

    /// Rich text: text escaped, links written the dialect's way.
    pub fn rich(&self, rich: &Rich) -> String {
        rich.0
            .iter()
            .map(|span| match span {
                Span::Text(text) => self.text(text),
                Span::Link { text, url } => (self.link)(&self.text(text), url),
            })
            .collect()
    }

    /// Rich text with its links shown as their text only, escaped.
    pub fn rich_without_links(&self, rich: &Rich) -> String {
        rich.0.iter().map(|span| self.text(span.shown())).collect()
    }

    /// A Markdown block quote: every line of `text` escaped and prefixed with `> `.
    pub fn quote(&self, text: &str) -> String {
        text.lines()
            .map(|line| format!("> {}", self.text(line)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// One Markdown bullet line, `- item`, per item.
    pub fn list_lines(&self, items: &[Rich]) -> Vec<String> {
        items
            .iter()
            .map(|item| format!("- {}", self.rich(item)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_links_and_escapes_text() {
        let rich = Rich::text("<b>&\"x\" ").push_link("#1 - a|b", "http://x/1");
        assert_eq!(
            Dialect::HTML.rich(&rich),
            "&lt;b&gt;&amp;&quot;x&quot; <a href=\"http://x/1\">#1 - a|b</a>"
        );
        assert_eq!(
            Dialect::MRKDWN.rich(&rich),
            "&lt;b&gt;&amp;\"x\" <http://x/1|#1 - a|b>"
        );
        assert_eq!(
            Dialect::COMMONMARK.rich(&rich),
            "&lt;b&gt;&amp;\"x\" [\\#1 \\- a\\|b](http://x/1)"
        );
        assert_eq!(Dialect::PLAIN.rich(&rich), "<b>&\"x\" #1 - a|b");
        assert_eq!(
            Dialect::PLAIN_WITH_URLS.rich(&rich),
            "<b>&\"x\" #1 - a|b (http://x/1)"
        );
    }

    #[test]
    fn markdown_dialects_escape_text_and_keep_links() {
        let dialect = Dialect::markdown(|t| escape::backslashed(t, "*[]"));
        let rich = Rich::text("*a* ").push_link("[x]", "http://h/a b");
        assert_eq!(dialect.rich(&rich), r"\*a\* [\[x\]](http://h/a%20b)");
        assert_eq!(dialect.quote("a\n*b*"), "> a\n> \\*b\\*");
        assert_eq!(
            dialect.list_lines(&[Rich::text("*"), Rich::text("b")]),
            [r"- \*", "- b"]
        );
    }

    #[test]
    fn an_html_dialect_escapes_the_href() {
        let dialect = Dialect::html(escape::html_text);
        let rich = Rich::text("<b>\"&\" ").push_link("a<b", "http://h/?q=\"1\"");
        assert_eq!(
            dialect.rich(&rich),
            "&lt;b&gt;\"&amp;\" <a href=\"http://h/?q=&quot;1&quot;\">a&lt;b</a>"
        );
    }

    #[test]
    fn a_cut_keeps_links_whole_and_counts_those_left_out() {
        let tags = Rich::join(
            (1..=300).map(|i| Rich::link(format!("t{i}"), "http://x/")),
            ", ",
        );
        let cut = tags.fit(12);
        assert_eq!(Dialect::PLAIN.rich(&cut), "t1, t2, t3, … and 297 more");
        assert_eq!(Dialect::PLAIN.rich(&tags.fit(0)), "t1 … and 299 more");
        let text = Rich::link("#1", "http://x/1").push(" a long text");
        assert_eq!(Dialect::PLAIN.rich(&text.fit(6)), "#1 a …");
        assert_eq!(text.fit(100), text);
    }
}
