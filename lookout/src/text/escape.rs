//! Escaping primitives: user text made safe for a markup, so that a title like
//! `<b>&"x"` arrives as plain text everywhere. A service whose platform needs its own
//! escaping builds it from these ([`backslashed`], [`reference`]) in its own file.

/// HTML text and attribute values: `&`, `<`, `>`, `"` and `'` as entities.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Only `&`, `<` and `>` as entities, quotes kept: Slack-style mrkdwn (where exactly
/// these three are special) and HTML renderers that accept a few tags only and do not
/// all decode `&quot;` or `&#39;` in text.
pub fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// CommonMark: every ASCII punctuation character that could start markup is
/// backslash-escaped, and `&`, `<`, `>` become entities so no HTML gets through.
pub fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '!'
            | '|' | '~' | '@' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `text` with a backslash before each of `specials` (and nothing else changed): the
/// building block of a Markdown dialect whose renderer honours backslash escapes.
pub fn backslashed(text: &str, specials: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if specials.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `c` as a numeric character reference, `&#42;`: for renderers that ignore backslash
/// escapes but decode references.
pub fn reference(c: char) -> String {
    format!("&#{};", c as u32)
}

/// A URL inside Markdown link parentheses: spaces and parentheses percent-encoded.
pub fn markdown_url(url: &str) -> String {
    url.replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
}

/// A URL inside a mrkdwn `<url|text>` link: `|` and `>` would end it.
pub fn mrkdwn_url(url: &str) -> String {
    html_text(url).replace('|', "%7C")
}

/// One segment of a URL path (a Matrix room ID, a topic): everything but the
/// unreserved characters `A-Z a-z 0-9 - . _ ~` percent-encoded, so `/`, `?`, `#`,
/// `!` and `:` cannot change the path.
pub fn url_path_segment(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(html(r#"<b>&"x"'"#), "&lt;b&gt;&amp;&quot;x&quot;&#39;");
        assert_eq!(html_text("<b>&\"x\""), "&lt;b&gt;&amp;\"x\"");
        assert_eq!(markdown("*a* [l](u) <b>"), r"\*a\* \[l\]\(u\) &lt;b&gt;");
        assert_eq!(mrkdwn_url("http://x/a|b"), "http://x/a%7Cb");
        assert_eq!(
            url_path_segment("!room:example.org/x?y#z é"),
            "%21room%3Aexample.org%2Fx%3Fy%23z%20%C3%A9"
        );
    }

    #[test]
    fn primitives() {
        assert_eq!(backslashed(r"a\*b@", r"\*"), r"a\\\*b@");
        assert_eq!(reference('*'), "&#42;");
        assert_eq!(
            html_text(r#"<b>&"x"</b> *b*"#),
            "&lt;b&gt;&amp;\"x\"&lt;/b&gt; *b*"
        );
    }
}
