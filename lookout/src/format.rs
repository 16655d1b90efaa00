//! Formatting shared by every service: names, mentions, excerpts, the original one-line
//! messages, Sprint.ly colours and links, and escaping for each markup a service speaks.

use crate::payload::{Attributes, Block, Comment, Deploy, Event, Favorite, Item, User};
use crate::service::BuildError;

/// The colour of events whose item type has none of its own (and of deploys).
pub const DEFAULT_COLOR: &str = "#84b431";

/// How many characters of a comment the one-line messages quote.
pub const EXCERPT_CHARS: usize = 50;

/// Where Sprint.ly's report pages live (the fields of Slack-style messages link there).
pub const REPORTS_URL: &str = "https://sprint.ly/reports";

/// A duration as people read it in a report: `381ms`, `1m 30s` (rounded to the
/// millisecond).
pub fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// `First L.`, or just `First` when the last name is empty or missing.
pub fn short_name(user: &User) -> String {
    let first = user.first_name.trim();
    match user
        .last_name
        .as_deref()
        .map(str::trim)
        .and_then(|l| l.chars().next())
    {
        Some(initial) => format!("{first} {initial}."),
        None => first.to_owned(),
    }
}

/// `First Last`, or just `First`.
pub fn full_name(user: &User) -> String {
    let first = user.first_name.trim();
    match user
        .last_name
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        Some(last) => format!("{first} {last}"),
        None => first.to_owned(),
    }
}

/// Replaces Sprint.ly mentions, `@[Name](pk:123)`, with the plain `Name`.
pub fn clean_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@[") {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        match parse_mention(candidate) {
            Some((name, used)) => {
                out.push_str(name);
                rest = &candidate[used..];
            }
            None => {
                out.push_str("@[");
                rest = &candidate[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `@[Name](pk:123)` at the start of `text`: the name and the bytes the mention takes.
fn parse_mention(text: &str) -> Option<(&str, usize)> {
    let inner = text.strip_prefix("@[")?;
    let close = inner.find("](pk:")?;
    let name = &inner[..close];
    if name.is_empty() || name.contains(['[', ']', '\n']) {
        return None;
    }
    let after = &inner[close + "](pk:".len()..];
    let digits = after.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 || !after[digits..].starts_with(')') {
        return None;
    }
    Some((name, 2 + close + "](pk:".len() + digits + 1))
}

/// Cuts `text` to `max` characters (never inside a character), adding `...` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A comment as the one-line messages quote it: mentions cleaned, at most
/// [`EXCERPT_CHARS`] characters, then `...`.
pub fn excerpt(body: &str) -> String {
    truncate(&clean_mentions(body), EXCERPT_CHARS)
}

/// Sprint.ly's colour for an item type.
pub fn item_color(kind: &str) -> &'static str {
    match kind {
        "story" => "#96be60",
        "task" => "#454545",
        "defect" => "#D94949",
        "test" => "#5A96AB",
        _ => DEFAULT_COLOR,
    }
}

/// A `#rrggbb` colour as a number (Discord wants colours that way).
pub fn color_number(hex: &str) -> u32 {
    u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0)
}

/// `in-progress` → `In progress`.
pub fn status_words(status: &str) -> String {
    let words = status.replace('-', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `story` → `Story`.
pub fn capitalized(word: &str) -> String {
    status_words(word)
}

/// `QA-ready` → `Qa-ready`: the first letter upper case and every other one lower case,
/// as the original's Python `str.capitalize()` wrote environments and item types.
pub fn sentence_case(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// `#1212 - Title`, how items are named in links.
pub fn item_label(item: &Item) -> String {
    format!("#{} - {}", item.number, item.title)
}

/// `1 item`, `3 items`.
pub fn count_items(n: usize) -> String {
    if n == 1 {
        "1 item".to_owned()
    } else {
        format!("{n} items")
    }
}

/// A link to one of Sprint.ly's report pages, e.g. `reports?assignee=12`.
pub fn reports_link(param: &str, value: &str) -> String {
    let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{REPORTS_URL}?{param}={value}")
}

/// The typed attributes of an event, or the reason a formatting service cannot use them:
/// a payload problem (failed, with its JSON path) or an unknown model (skipped).
pub fn attributes(event: &Event) -> Result<&Attributes, BuildError> {
    match event.attributes() {
        Ok(Attributes::Other(_)) => Err(BuildError::no_message_for(event)),
        Ok(attributes) => Ok(attributes),
        Err(err) => Err(BuildError::Payload(err.clone())),
    }
}

/// The original's one-line message for an event (HipChat's message, Slack's fallback).
pub fn one_line(event: &Event) -> Result<String, BuildError> {
    Ok(match attributes(event)? {
        Attributes::Item(item) => item_line(item, &event.action),
        Attributes::Comment(comment) => comment_line(comment),
        Attributes::Block(block) => block_line(block),
        Attributes::Favorite(favorite) => favorite_line(favorite),
        Attributes::Deploy(deploy) => deploy_line(deploy),
        Attributes::Other(_) => return Err(BuildError::no_message_for(event)),
    })
}

/// `"Title" (#12) http://…`, how the one-line messages cite an item.
fn cite(item: &Item) -> String {
    format!("\"{}\" (#{}) {}", item.title, item.number, item.short_url)
}

fn item_line(item: &Item, action: &str) -> String {
    let mut line = format!(
        "{} {action} the {} {}",
        short_name(&item.created_by),
        item.kind,
        cite(item)
    );
    if let Some(assignee) = item
        .assigned_to
        .as_ref()
        .filter(|a| a.id != item.created_by.id)
    {
        line.push_str(&format!(" and assigned it to {}", short_name(assignee)));
    }
    line
}

fn comment_line(comment: &Comment) -> String {
    format!(
        "{} commented \"{}\" on {} {}",
        short_name(&comment.created_by),
        excerpt(&comment.body),
        comment.item.kind,
        cite(&comment.item)
    )
}

fn block_line(block: &Block) -> String {
    let mut line = format!(
        "{} indicated the {} {} is blocked on the {} {}",
        short_name(&block.user),
        block.blocked.kind,
        cite(&block.blocked),
        block.item.kind,
        cite(&block.item)
    );
    if let Some(owner) = &block.item.assigned_to {
        line.push_str(&format!(", which is owned by {}", short_name(owner)));
    }
    line
}

fn favorite_line(favorite: &Favorite) -> String {
    format!(
        "{} favorited the {} {}",
        short_name(&favorite.user),
        favorite.item.kind,
        cite(&favorite.item)
    )
}

fn deploy_line(deploy: &Deploy) -> String {
    // The original always said "items", even for one; kept for fidelity.
    format!(
        "{} deployed {} items to {}.",
        short_name(&deploy.user),
        deploy.items.len(),
        deploy.environment
    )
}

/// Escaping user text for each markup. Every service escapes through these, so a title
/// like `<b>&"x"` arrives as plain text everywhere.
pub mod escape {
    /// HTML text and attribute values.
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

    /// Slack's mrkdwn (and Mattermost's attachments): only `&`, `<` and `>` are special.
    pub fn slack(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    /// CommonMark-style Markdown (Discord, Mattermost, Rocket.Chat, Teams, ntfy; Zulip
    /// needs [`zulip`]): every ASCII punctuation character that could start markup is
    /// backslash-escaped, and `<`/`>` become entities so no HTML gets through.
    pub fn markdown(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-'
                | '!' | '|' | '~' | '@' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out
    }

    /// Text for a Markdown link's label: like [`markdown`].
    pub fn markdown_link_text(text: &str) -> String {
        markdown(text)
    }

    /// Zulip Markdown. Zulip does not honour backslash escapes (zulip/zulip#18202: `\*`
    /// shows the backslash), so [`markdown`] would leave stray backslashes there. Zulip
    /// does pass character references through untouched, so markup characters become
    /// those instead: `&`, `<`, `>` as named entities; `*` `_` `` ` `` `[` `]` `#` `~` `$`
    /// `|` `:` everywhere (emphasis, mentions `@**…**`, code, links, headings and channel
    /// links, strikethrough, TeX `$$`, tables, `:emoji:` and `scheme://` autolinks); and at
    /// the start of a line `-` `+` `/` and the `.` or `)` after a number (lists, `/me`).
    pub fn zulip(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 16);
        let mut line_start = true;
        let mut digits = String::new();
        for c in text.chars() {
            // A run of digits at the start of a line is held back until we know whether
            // an ordered-list marker (`1.` or `1)`) follows.
            if line_start && c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let after_digits = !digits.is_empty();
            out.push_str(&digits);
            digits.clear();
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '*' | '_' | '`' | '[' | ']' | '#' | '~' | '$' | '|' | ':' => {
                    out.push_str(&format!("&#{};", c as u32));
                }
                '.' | ')' if after_digits => out.push_str(&format!("&#{};", c as u32)),
                '-' | '+' | '/' if line_start => out.push_str(&format!("&#{};", c as u32)),
                c => out.push(c),
            }
            line_start = c == '\n' || (line_start && !after_digits && c == ' ');
        }
        out.push_str(&digits);
        out
    }

    /// A URL inside Markdown link parentheses: spaces and parentheses percent-encoded.
    pub fn markdown_url(url: &str) -> String {
        url.replace(' ', "%20")
            .replace('(', "%28")
            .replace(')', "%29")
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

    /// A URL inside a Slack `<url|text>` link: `|` and `>` would end it.
    pub fn slack_url(url: &str) -> String {
        slack(url).replace('|', "%7C")
    }

    /// HTML text content for renderers that accept a few tags only (Google Chat cards,
    /// Telegram): `&`, `<` and `>` become entities; quotes stay as they are, because not
    /// every such renderer decodes `&quot;` or `&#39;` in text.
    pub fn html_text(text: &str) -> String {
        slack(text)
    }

    /// Discord's Markdown: a backslash before every character that can start markup, a
    /// mention (`<@…>`, `@everyone`), a heading, a list or a masked link. Discord shows
    /// HTML entities literally, so none are used.
    pub fn discord(text: &str) -> String {
        backslashed(text, "\\*_~`|<>#-+[]()@")
    }

    /// Mattermost's Markdown (message text, attachment pretext, text and field values):
    /// like [`markdown`], and `@` written as the entity `&#64;`. Mattermost's server finds
    /// `@channel`/`@all`/`@here` in the raw text, treating a backslash as a word break,
    /// so only an entity keeps user text from notifying a whole channel.
    pub fn mattermost(text: &str) -> String {
        text.split('@')
            .map(markdown)
            .collect::<Vec<_>>()
            .join("&#64;")
    }

    /// Rocket.Chat attachment Markdown (pretext, text, field values), which Rocket.Chat
    /// renders with `marked` after escaping HTML itself: backslash escapes work, and `&`,
    /// `<`, `>` must stay as they are (an entity or `\&` would show literally).
    pub fn rocketchat(text: &str) -> String {
        backslashed(text, "\\*_~`|#-+[]()!")
    }

    /// The Markdown subset of Adaptive Cards (`Fact.value` in Microsoft Teams): bold,
    /// italic and links. HTML is never rendered there, so `<`, `>`, `&` stay as they are;
    /// only the characters of that subset are escaped, as some Teams clients show
    /// backslashes before other characters.
    pub fn adaptive_card(text: &str) -> String {
        backslashed(text, "\\*_~`[]()")
    }

    /// `text` with a backslash before each of `specials`.
    fn backslashed(text: &str, specials: &str) -> String {
        let mut out = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            if specials.contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(first: &str, last: serde_json::Value) -> User {
        serde_json::from_value(json!({"id": 1, "first_name": first, "last_name": last})).unwrap()
    }

    #[test]
    fn names() {
        assert_eq!(short_name(&user("Joe", json!("Stump"))), "Joe S.");
        assert_eq!(short_name(&user("Joe", json!(""))), "Joe");
        assert_eq!(short_name(&user("Joe", json!(null))), "Joe");
        assert_eq!(short_name(&user("Ana", json!("Öberg"))), "Ana Ö.");
        assert_eq!(full_name(&user("Joe", json!("Stump"))), "Joe Stump");
        assert_eq!(full_name(&user("Joe", json!(null))), "Joe");
    }

    #[test]
    fn mentions() {
        assert_eq!(
            clean_mentions("@[Joe Stump](pk:123) look"),
            "Joe Stump look"
        );
        assert_eq!(
            clean_mentions("hi @[A](pk:1) and @[B](pk:22)!"),
            "hi A and B!"
        );
        // Not mentions: left as they are.
        assert_eq!(
            clean_mentions("@[x](http://a) @[y](pk:) @["),
            "@[x](http://a) @[y](pk:) @["
        );
        assert_eq!(clean_mentions("日本 @[名前](pk:9)"), "日本 名前");
    }

    #[test]
    fn excerpts_cut_on_characters() {
        let fifty = "a".repeat(50);
        assert_eq!(excerpt(&fifty), fifty);
        assert_eq!(excerpt(&format!("{fifty}b")), format!("{fifty}..."));
        let emoji = "🚀".repeat(51);
        assert_eq!(excerpt(&emoji), format!("{}...", "🚀".repeat(50)));
        let cjk = "日本語".repeat(20);
        assert_eq!(excerpt(&cjk).chars().count(), 53);
        // Mentions are cleaned before counting.
        assert_eq!(
            excerpt(&format!("@[Al](pk:1){}", "x".repeat(48))),
            format!("Al{}", "x".repeat(48))
        );
    }

    #[test]
    fn colours_and_words() {
        assert_eq!(item_color("defect"), "#D94949");
        assert_eq!(item_color("epic"), DEFAULT_COLOR);
        assert_eq!(color_number("#84b431"), 0x84b431);
        assert_eq!(status_words("in-progress"), "In progress");
        assert_eq!(status_words(""), "");
        assert_eq!(count_items(1), "1 item");
        assert_eq!(count_items(0), "0 items");
    }

    #[test]
    fn sentence_case_lowers_the_rest() {
        assert_eq!(sentence_case("production"), "Production");
        assert_eq!(sentence_case("QA-ready"), "Qa-ready");
        assert_eq!(sentence_case("ñandú"), "Ñandú");
        assert_eq!(sentence_case(""), "");
    }

    #[test]
    fn excerpt_edges() {
        // Exactly 50 characters stay whole; 51 are cut to 50 plus `...`.
        let fifty = "é".repeat(50);
        assert_eq!(excerpt(&fifty), fifty);
        assert_eq!(excerpt(&format!("{fifty}x")), format!("{fifty}..."));
        // A cut between the code points of an emoji sequence still leaves valid UTF-8.
        let family = "👨\u{200d}👩\u{200d}👧".repeat(20);
        let cut = excerpt(&family);
        assert_eq!(cut.chars().count(), 53);
        assert!(cut.ends_with("..."));
        // Short text is untouched, however many bytes it takes.
        assert_eq!(excerpt("日本語のテキスト 🚀"), "日本語のテキスト 🚀");
        assert_eq!(excerpt(""), "");
    }

    /// The original's one-line messages, byte for byte, for every model.
    #[test]
    fn one_line_messages_match_the_original() {
        let line = |name: &str| one_line(&fixture(name)).unwrap();
        assert_eq!(
            line("item"),
            "Joe S. created the story \"As a user, I want outbound service hooks so that I \
             will see new items announced in Slack or HipChat.\" (#1212) \
             http://sprint.ly/i/1/116550/"
        );
        assert_eq!(
            line("item-no-last-name"),
            "Joe created the task \"Document the outbound services API\" (#1212) \
             http://sprint.ly/i/1/116550/ and assigned it to Craig"
        );
        assert_eq!(
            line("comment"),
            "Joe S. commented \"Hey guys, what's the status on this?\" on task \
             \"Change the spinner to our glowing running man.\" (#1212) \
             http://sprint.ly/i/1/91594/"
        );
        assert_eq!(
            line("comment-mentions"),
            "Joe S. commented \"Craig Pattison can you pair with Joe Stump on this...\" on \
             task \"Change the spinner to our glowing running man.\" (#1212) \
             http://sprint.ly/i/1/91594/"
        );
        assert_eq!(
            line("block"),
            "Joe S. indicated the story \"As a customer, I want to be notified before my CC \
             expires so that I can update my billing details.\" (#2222) \
             http://sprint.ly/i/1111/1111/ is blocked on the task \"Change the spinner to \
             our glowing running man.\" (#2222) http://sprint.ly/i/1111/1111/, which is \
             owned by Craig P."
        );
        assert_eq!(
            line("favorite"),
            "Joe S. favorited the story \"As a user, I want a global filter UI so that I can \
             use filters on the dashboard and timelines.\" (#1111) \
             http://sprint.ly/i/1111/1111/"
        );
        assert_eq!(line("deploy"), "Joe S. deployed 3 items to production.");
        // The original said "items" even for one.
        assert_eq!(line("deploy-single"), "Joe S. deployed 1 items to staging.");
    }

    #[test]
    fn one_line_failures_name_the_path() {
        let err = one_line(&fixture("item-missing-title")).unwrap_err();
        assert!(matches!(err, BuildError::Payload(_)), "{err:?}");
        assert_eq!(err.to_string(), "attributes.title: missing");
        let err = one_line(&fixture("unknown-model")).unwrap_err();
        assert_eq!(err, BuildError::Skip("no message for model Widget".into()));
    }

    fn fixture(name: &str) -> Event {
        crate::samples::edge_case(name)
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape::html(r#"<b>&"x"'"#),
            "&lt;b&gt;&amp;&quot;x&quot;&#39;"
        );
        assert_eq!(escape::slack("<b>&\"x\""), "&lt;b&gt;&amp;\"x\"");
        assert_eq!(
            escape::markdown("*a* [l](u) <b>"),
            r"\*a\* \[l\]\(u\) &lt;b&gt;"
        );
        assert_eq!(escape::slack_url("http://x/a|b"), "http://x/a%7Cb");
        assert_eq!(
            escape::url_path_segment("!room:example.org/x?y#z é"),
            "%21room%3Aexample.org%2Fx%3Fy%23z%20%C3%A9"
        );
    }

    #[test]
    fn zulip_escaping_uses_character_references() {
        assert_eq!(
            escape::zulip(r#"<b>&"x"</b> *y* @**all** `c` [l](http://e)"#),
            "&lt;b&gt;&amp;\"x\"&lt;/b&gt; &#42;y&#42; @&#42;&#42;all&#42;&#42; \
             &#96;c&#96; &#91;l&#93;(http&#58;//e)"
        );
        assert_eq!(
            escape::zulip("#**general** :smile: $$x$$ ~~s~~ a|b"),
            "&#35;&#42;&#42;general&#42;&#42; &#58;smile&#58; &#36;&#36;x&#36;&#36; &#126;&#126;s&#126;&#126; a&#124;b"
        );
        // Line starts: lists, /me, ordered lists; the same characters mid-line stay.
        assert_eq!(
            escape::zulip("- a-b\n  + c\n/me d/e\n12. f 3. g\n4) h\n10 apples"),
            "&#45; a-b\n  &#43; c\n&#47;me d/e\n12&#46; f 3. g\n4&#41; h\n10 apples"
        );
        assert_eq!(escape::zulip("2024"), "2024");
        // Already-escaped text is escaped again, so it shows as typed.
        assert_eq!(escape::zulip("&amp;"), "&amp;amp;");
    }

    #[test]
    fn platform_escaping() {
        let markup = r#"<b>&"x"</b> *b* [l](u) @everyone"#;
        assert_eq!(
            escape::html_text(markup),
            "&lt;b&gt;&amp;\"x\"&lt;/b&gt; *b* [l](u) @everyone"
        );
        assert_eq!(
            escape::discord(markup),
            r#"\<b\>&"x"\</b\> \*b\* \[l\]\(u\) \@everyone"#
        );
        assert_eq!(
            escape::mattermost(markup),
            r#"&lt;b&gt;&amp;"x"&lt;/b&gt; \*b\* \[l\]\(u\) &#64;everyone"#
        );
        assert_eq!(
            escape::rocketchat(markup),
            r#"<b>&"x"</b> \*b\* \[l\]\(u\) @everyone"#
        );
        assert_eq!(
            escape::adaptive_card(markup),
            r#"<b>&"x"</b> \*b\* \[l\]\(u\) @everyone"#
        );
        assert_eq!(escape::discord(r"a\b"), r"a\\b");
    }
}
