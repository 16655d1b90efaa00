//! Length budgets: text cut to what a platform accepts. Platforms that refuse a message
//! over their limit (Discord, Telegram) would otherwise lose it whole.
//!
//! [`fit`] cuts markup between its units, never inside one, so what is left renders as
//! the start of what was meant; [`fit_lines`] keeps as many lines of a list as fit and
//! says how many more there were. Lengths are counted in characters (Unicode scalar
//! values), which is what the platforms count, or more.

/// Cuts plain `text` to `max` characters (never inside a character), adding `...` when
/// cut (the original's one-line messages did so).
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// What ends markup that was cut.
const ELLIPSIS: char = '…';

/// How much of a message's texts a delivery keeps, as the fitting pass
/// ([`crate::limits::build_within`]) asks: `None` keeps a text whole. The parts that may
/// shrink (the description or comment, the quote, lists, field values) get at most
/// `parts` characters each; titles at most `title`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cut {
    pub parts: Option<usize>,
    pub title: Option<usize>,
}

impl Cut {
    /// Everything whole: what every delivery starts with.
    pub const NONE: Cut = Cut {
        parts: None,
        title: None,
    };

    /// The parts that may shrink cut to `room` characters each, titles whole.
    pub const fn parts(room: usize) -> Cut {
        Cut {
            parts: Some(room),
            title: None,
        }
    }

    /// The parts cut to `parts` characters each and titles to `title`.
    pub const fn title(parts: usize, title: usize) -> Cut {
        Cut {
            parts: Some(parts),
            title: Some(title),
        }
    }
}

/// `markup` in at most `max` characters: whole when it fits, else as many of its units
/// as fit before a closing `…`. A unit is a character, or one of what must not be cut:
/// an entity (`&amp;`, `&#42;`), a backslash escape (`\*`), a Markdown link
/// (`[text](url)`), a mrkdwn link or tag (`<url|text>`, `<br>`) and an HTML element
/// with its content (`<a href="…">…</a>`, `<b>…</b>`).
pub fn fit(markup: &str, max: usize) -> String {
    if chars(markup) <= max {
        return markup.to_owned();
    }
    let room = max.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    let mut rest = markup;
    while !rest.is_empty() {
        let unit = &rest[..unit_len(rest)];
        let size = chars(unit);
        if used + size > room {
            break;
        }
        out.push_str(unit);
        used += size;
        rest = &rest[unit.len()..];
    }
    if max > 0 {
        out.push(ELLIPSIS);
    }
    out
}

/// [`fit`] for platforms that count their limit in UTF-8 bytes (Webex, WeCom): `markup`
/// in at most `max_bytes` bytes, cut between units as `fit` cuts it.
pub fn fit_bytes(markup: &str, max_bytes: usize) -> String {
    if markup.len() <= max_bytes {
        return markup.to_owned();
    }
    // The most characters whose cut fits: a character is 1 to 4 bytes, so search.
    let (mut fits, mut too_many) = (0, max_bytes + 1);
    while too_many - fits > 1 {
        let middle = (fits + too_many) / 2;
        if fit(markup, middle).len() <= max_bytes {
            fits = middle;
        } else {
            too_many = middle;
        }
    }
    let out = fit(markup, fits);
    if out.len() <= max_bytes {
        out
    } else {
        String::new()
    }
}

/// As many of `lines` as fit in `max` characters, one per line; when some do not, a
/// last line says how many: `… and 12 more`.
pub fn fit_lines(lines: &[String], max: usize) -> String {
    let all = lines.join("\n");
    if chars(&all) <= max {
        return all;
    }
    // Room for the last line at its longest, and the line break before it.
    let reserve = chars(&more(lines.len())) + 1;
    let mut shown: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in lines {
        let size = chars(line) + usize::from(!shown.is_empty());
        if used + size + reserve > max {
            break;
        }
        used += size;
        shown.push(line);
    }
    let hidden = more(lines.len() - shown.len());
    shown.push(&hidden);
    shown.join("\n")
}

fn more(hidden: usize) -> String {
    format!("{ELLIPSIS} and {hidden} more")
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// The length in bytes of the unit `text` starts with (see [`fit`]).
fn unit_len(text: &str) -> usize {
    let first = text.chars().next().map_or(0, char::len_utf8);
    let found = match text.as_bytes()[0] {
        b'\\' => text[1..].chars().next().map(|c| 1 + c.len_utf8()),
        b'&' => entity_len(text),
        b'[' => markdown_link_len(text),
        b'<' => tag_or_element_len(text),
        _ => None,
    };
    found.unwrap_or(first)
}

/// `&name;` or `&#123;`.
fn entity_len(text: &str) -> Option<usize> {
    let end = text[1..].find(';')? + 1;
    let name = &text[1..end];
    let name = name.strip_prefix('#').unwrap_or(name);
    let valid = (1..=10).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then_some(end + 1)
}

/// `[text](url)`, the text's escaped brackets (`\]`) skipped.
fn markdown_link_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b']' if bytes.get(i + 1) == Some(&b'(') => {
                return Some(i + 2 + text[i + 2..].find(')')? + 1);
            }
            b']' | b'[' | b'\n' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// A tag (`<br>`, `<url|text>`, `</b>`), or an opening tag with its content and its
/// closing tag (`<a href="…">…</a>`).
fn tag_or_element_len(text: &str) -> Option<usize> {
    let tag_end = text.find('>')? + 1;
    let name: String = text[1..tag_end - 1]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    if name.is_empty() {
        return Some(tag_end);
    }
    let close = format!("</{name}>");
    match text[tag_end..].find(&close) {
        Some(at) => Some(tag_end + at + close.len()),
        None => Some(tag_end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_on_characters() {
        assert_eq!(truncate("日本語", 2), "日本...");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn what_fits_is_untouched() {
        assert_eq!(fit("a &amp; b", 9), "a &amp; b");
        assert_eq!(fit("", 0), "");
    }

    /// Every cut of `markup`, at every budget, leaves `unit` whole or out.
    fn never_splits(markup: &str, unit: &str) {
        for max in 0..=chars(markup) {
            let cut = fit(markup, max);
            assert!(chars(&cut) <= max, "{max}: {cut}");
            let kept = cut.trim_end_matches(ELLIPSIS);
            let start = markup.find(unit).unwrap();
            let whole = kept.len() >= start + unit.len() || kept.len() <= start;
            assert!(whole, "{max}: {cut:?} splits {unit:?}");
            assert!(markup.starts_with(kept), "{max}: {cut:?}");
        }
    }

    #[test]
    fn a_cut_never_splits_an_entity_an_escape_a_tag_or_a_link() {
        never_splits("Tom &amp; Jerry", "&amp;");
        never_splits("x &#42;y&#42;", "&#42;");
        never_splits(r"a \* b", r"\*");
        never_splits("one<br>two", "<br>");
        let link = "<a href=\"http://x/?a&amp;b\">it &lt;now&gt;</a>";
        never_splits(&format!("see {link}!"), link);
        never_splits("go <b>there</b> now", "<b>there</b>");
        never_splits(
            r"see [\[x\] y](http://h/a%20b) now",
            r"[\[x\] y](http://h/a%20b)",
        );
        never_splits("ping <http://x/1|#1 - a> now", "<http://x/1|#1 - a>");
        assert_eq!(fit("ab <a href=\"u\">link</a>", 10), "ab …");
    }

    #[test]
    fn byte_budgets_count_utf8_bytes() {
        assert_eq!(fit_bytes("abc", 3), "abc");
        let cut = fit_bytes("日本語の文 &amp; more", 10);
        assert!(cut.len() <= 10, "{cut}");
        assert_eq!(cut, "日本…");
        assert_eq!(fit_bytes("日本語", 2), "");
    }

    #[test]
    fn unmatched_markup_is_cut_as_characters() {
        assert_eq!(fit("a & b & c & d", 6), "a & b…");
        assert_eq!(fit("[not a link", 4), "[no…");
        assert_eq!(fit("1 < 2 < 3", 4), "1 <…");
    }

    #[test]
    fn lines_that_do_not_fit_are_counted() {
        let lines: Vec<String> = (1..=200).map(|i| format!("- item {i}")).collect();
        let text = fit_lines(&lines, 100);
        assert!(chars(&text) <= 100, "{}", chars(&text));
        let shown = text.lines().count() - 1;
        assert!(
            text.ends_with(&format!("\n… and {} more", 200 - shown)),
            "{text}"
        );
        assert_eq!(fit_lines(&lines[..2], 100), "- item 1\n- item 2");
    }
}
