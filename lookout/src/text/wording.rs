//! Sprint.ly's wording, in no markup: names, mentions, excerpts, the original one-line
//! messages, colours by item type and links to the report pages.

use super::budget::truncate;
use crate::error::BuildError;
use crate::payload::{Attributes, Block, Comment, Deploy, Event, Favorite, Item, User};

/// The colour of events whose item type has none of its own (and of deploys).
pub const DEFAULT_COLOR: &str = "#84b431";
/// The colour of Lookout's own alerts.
pub const ALERT_COLOR: &str = "#d0342c";

/// How many characters of a comment the one-line messages quote.
pub const EXCERPT_CHARS: usize = 50;

/// Where Sprint.ly's report pages live (the fields of Slack-style messages link there).
pub const REPORTS_URL: &str = "https://sprint.ly/reports";

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

/// `in-progress` → `In progress`, `story` → `Story`: dashes as spaces, the first
/// letter upper case.
pub fn humanized(word: &str) -> String {
    let words = word.replace('-', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
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
    if let Some(events) = event.digest() {
        // A digest's one text: its headline, then each event's, links written out.
        return Ok(super::Message::digest(events)?.plain());
    }
    Ok(match attributes(event)? {
        Attributes::Item(item) => item_line(item, &event.action),
        Attributes::Comment(comment) => comment_line(comment),
        Attributes::Block(block) => block_line(block),
        Attributes::Favorite(favorite) => favorite_line(favorite),
        Attributes::Deploy(deploy) => deploy_line(deploy),
        Attributes::Alert(alert) => format!("{}: {}", alert.title, alert.body),
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
        assert_eq!(humanized("in-progress"), "In progress");
        assert_eq!(humanized(""), "");
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
}
