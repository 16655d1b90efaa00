//! Keeping secrets out of everything that can be printed.
//!
//! A [`Redactor`] knows a set of secret strings and replaces every occurrence of them
//! (and of the forms they take once encoded into a URL, a form body or JSON) with
//! [`REDACTED`]. Every error, report row, log line and preview passes through one.

use std::fmt;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use url::Url;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The characters `url` percent-encodes in a path segment.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%');

/// A needle shorter than this is replaced only as a whole word (not inside `within`).
const SHORT: usize = 8;

/// A piece of a URL shorter than this (`in`, `to`, `api`) is not taken for a key at all.
const SHORTEST_URL_KEY: usize = 4;

#[derive(Clone, Default)]
pub struct Redactor {
    /// Every spelling of every secret, longest first so that a secret containing
    /// another is replaced whole.
    needles: Vec<String>,
    /// URL paths too short to be redacted on their own (`in`), as `(host/, path)`:
    /// redacted only right after their URL's host, where they are surely the key.
    anchored: Vec<(String, String)>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret value (a token, a password).
    pub fn add(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let json = serde_json::to_string(secret).unwrap_or_default();
        let spellings = [
            secret.to_owned(),
            form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
            utf8_percent_encode(secret, PATH_SEGMENT).to_string(),
            // The JSON string without its enclosing quotes (not trim_matches: the
            // secret itself may end in an escaped quote).
            json.get(1..json.len().saturating_sub(1))
                .unwrap_or_default()
                .to_owned(),
        ];
        for spelling in spellings {
            if !spelling.is_empty() && !self.needles.contains(&spelling) {
                self.needles.push(spelling);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        self.add_lines(secret);
    }

    /// Each long line of a multi-line secret (a PEM private key) on its own: a message
    /// may quote one line, or the whole with other line endings. PEM's `-----BEGIN …`
    /// lines hold nothing secret and stay readable.
    fn add_lines(&mut self, secret: &str) {
        const LINE_LIKE: usize = 16;
        if !secret.contains('\n') {
            return;
        }
        for line in secret.lines().map(str::trim) {
            if line.len() >= LINE_LIKE && !line.starts_with("-----") {
                self.add(line);
            }
        }
    }

    /// Adds a URL whose path, query and credentials are secret (an incoming-webhook URL:
    /// the key is the path). Its scheme and host stay readable in reports.
    pub fn add_url(&mut self, raw: &str) {
        let Ok(url) = Url::parse(raw) else {
            self.add(raw);
            return;
        };
        let secret_part = secret_part_of(&url);
        if secret_part.is_empty() {
            // Nothing but a host: then the host is the secret.
            self.add(raw);
        } else {
            // A path like `in` or `to` alone would blank out words: only after the host.
            if secret_part.chars().count() < SHORTEST_URL_KEY {
                self.add_anchored(&url, &secret_part);
            }
            self.add_fragment(&secret_part);
            // Also as written, in case the URL crate normalized it.
            if let Some(rest) = raw.split_once("://").and_then(|(_, r)| r.split_once('/')) {
                self.add_fragment(rest.1);
            }
            self.add_url_pieces(&url);
        }
        if let Some(password) = url.password() {
            self.add(password);
        }
        if !url.username().is_empty() {
            self.add(url.username());
        }
    }

    /// The pieces of a URL's key that an answer may quote apart from the rest (an error
    /// page saying `path: /hooks/KEY`, `query: token=KEY` or `token = KEY`): the path,
    /// the query, each query value, and each path segment long enough to be a key (short
    /// ones like `services` or `api` would blank out ordinary words).
    fn add_url_pieces(&mut self, url: &Url) {
        const KEY_LIKE: usize = 16;
        const VALUE_LIKE: usize = 8;
        let path = url.path().trim_start_matches('/');
        if url.query().is_some() {
            self.add_fragment(path);
        }
        if let Some(query) = url.query() {
            self.add_fragment(query);
            for (_, value) in url.query_pairs() {
                if value.len() >= VALUE_LIKE {
                    self.add(&value);
                }
            }
        }
        for segment in path.split('/').filter(|s| s.len() >= KEY_LIKE) {
            self.add(segment);
            if let Ok(decoded) = percent_encoding::percent_decode_str(segment).decode_utf8() {
                self.add(&decoded);
            }
        }
    }

    /// Adds a short path, to be redacted where it follows its URL's host and port.
    fn add_anchored(&mut self, url: &Url, path: &str) {
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let pair = (format!("{authority}/"), path.to_owned());
        if !self.anchored.contains(&pair) {
            self.anchored.push(pair);
        }
    }

    /// Adds a piece of a URL, if it is long enough to be a key.
    fn add_fragment(&mut self, piece: &str) {
        if piece.chars().count() >= SHORTEST_URL_KEY {
            self.add(piece);
        }
    }

    /// Adds every secret of another redactor.
    pub fn extend(&mut self, other: &Redactor) {
        for needle in &other.needles {
            if !self.needles.contains(needle) {
                self.needles.push(needle.clone());
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for pair in &other.anchored {
            if !self.anchored.contains(pair) {
                self.anchored.push(pair.clone());
            }
        }
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if !out.contains(needle.as_str()) {
                continue;
            }
            out = if needle.chars().count() < SHORT {
                replace_words(&out, needle)
            } else {
                out.replace(needle.as_str(), REDACTED)
            };
        }
        for (host, path) in &self.anchored {
            out = replace_after(&out, host, path);
        }
        out
    }

    /// [`redact`](Self::redact) for a text that may have been cut short: a tail that
    /// is the beginning of a secret (4 characters or more) is redacted too.
    pub fn redact_cut_end(&self, text: &str) -> String {
        const SHORTEST_TAIL: usize = 4;
        let mut out = self.redact(text);
        let longest_tail = self
            .needles
            .iter()
            .filter_map(|needle| {
                (SHORTEST_TAIL..needle.len())
                    .rev()
                    .filter(|&n| needle.is_char_boundary(n))
                    .find(|&n| out.ends_with(&needle[..n]))
            })
            .max();
        if let Some(tail) = longest_tail {
            out.truncate(out.len() - tail);
            out.push_str(REDACTED);
        }
        out
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_json(&self, value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.redact(k), self.redact_json(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty() && self.anchored.is_empty()
    }
}

/// `text` with `needle` replaced where it stands as a word of its own: not preceded or
/// followed by a letter or digit.
fn replace_words(text: &str, needle: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        let before = rest[..at]
            .chars()
            .next_back()
            .or_else(|| out.chars().next_back());
        let after = rest[at + needle.len()..].chars().next();
        out.push_str(&rest[..at]);
        if is_word(before) || is_word(after) {
            out.push_str(needle);
        } else {
            out.push_str(REDACTED);
        }
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    out
}

/// `text` with `path` replaced where it follows `host` and ends a word.
fn replace_after(text: &str, host: &str, path: &str) -> String {
    let whole = format!("{host}{path}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&whole) {
        let end = at + whole.len();
        out.push_str(&rest[..at + host.len()]);
        let ends_word = !rest[end..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric);
        out.push_str(if ends_word { REDACTED } else { path });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The part of a URL that carries its key: path (without the leading slash) and query.
fn secret_part_of(url: &Url) -> String {
    let path = url.path().trim_start_matches('/');
    match url.query() {
        Some(query) if path.is_empty() => query.to_owned(),
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secret spellings)", self.needles.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_spelling() {
        let mut r = Redactor::new();
        r.add("s3cr3t/tok en\"");
        assert_eq!(r.redact("a s3cr3t/tok en\" b"), "a [redacted] b");
        assert_eq!(r.redact("token=s3cr3t%2Ftok+en%22"), "token=[redacted]");
        assert_eq!(r.redact("/path/s3cr3t%2Ftok%20en%22"), "/path/[redacted]");
        assert_eq!(
            r.redact(r#"{"t":"s3cr3t/tok en\""}"#),
            r#"{"t":"[redacted]"}"#
        );
    }

    #[test]
    fn a_multi_line_secret_is_redacted_line_by_line() {
        let mut r = Redactor::new();
        r.add("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\nAwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n");
        assert_eq!(
            r.redact("line MIGHAgEAMBMGByqGSM49AgEGCCqGSM49 and AwEHBG0wawIBAQQg"),
            "line [redacted] and [redacted]"
        );
        assert_eq!(
            r.redact("-----BEGIN PRIVATE KEY-----"),
            "-----BEGIN PRIVATE KEY-----"
        );
    }

    #[test]
    fn url_secrets_keep_the_host() {
        let mut r = Redactor::new();
        r.add_url("https://hooks.example.com/services/T0/B0/XYZ");
        assert_eq!(
            r.redact("POST https://hooks.example.com/services/T0/B0/XYZ failed"),
            "POST https://hooks.example.com/[redacted] failed"
        );
    }

    #[test]
    fn url_keys_are_redacted_when_quoted_in_pieces() {
        let mut r = Redactor::new();
        r.add_url(
            "https://hooks.example.com/services/T0/B0/XYZXYZXYZXYZXYZXYZ?token=abcdefgh12&v=1",
        );
        let echoed = "path: /services/T0/B0/XYZXYZXYZXYZXYZXYZ\nquery: token=abcdefgh12&v=1\n\
                      param token = abcdefgh12; unknown hook XYZXYZXYZXYZXYZXYZ";
        let shown = r.redact(echoed);
        assert!(!shown.contains("XYZXYZ"), "{shown}");
        assert!(!shown.contains("abcdefgh12"), "{shown}");
        // Ordinary words of the path stay readable.
        assert!(r.redact("see the services docs").contains("services"));
        assert_eq!(r.redact("v = 1"), "v = 1");
    }

    #[test]
    fn url_credentials_are_secret() {
        let mut r = Redactor::new();
        r.add_url("https://bob:hunter2@example.com/");
        assert!(!r.redact("bob:hunter2").contains("hunter2"));
    }

    #[test]
    fn a_text_cut_inside_a_secret_loses_the_secret_s_beginning() {
        let mut r = Redactor::new();
        r.add("tk_0123456789abcdef");
        assert_eq!(r.redact_cut_end("token: tk_0123456"), "token: [redacted]");
        assert_eq!(r.redact_cut_end("a tk_0123456789abcdef"), "a [redacted]");
        // Too short to say.
        assert_eq!(r.redact_cut_end("a tk_"), "a tk_");
    }

    #[test]
    fn short_url_paths_and_short_secrets_do_not_blank_out_words() {
        let mut r = Redactor::new();
        r.add_url("http://127.0.0.1:9/in");
        r.add_url("http://127.0.0.1:9/to");
        let said = "no answer within 1s, redirect to http://127.0.0.1:9/in not followed";
        assert_eq!(
            r.redact(said),
            "no answer within 1s, redirect to http://127.0.0.1:9/[redacted] not followed"
        );
        assert_eq!(
            r.redact("http://127.0.0.1:9/index"),
            "http://127.0.0.1:9/index"
        );
        let mut r = Redactor::new();
        r.add("s3cr");
        assert_eq!(r.redact("pw s3cr, not as3cr"), "pw [redacted], not as3cr");
    }

    #[test]
    fn longer_secrets_win() {
        let mut r = Redactor::new();
        r.add("abc");
        r.add("abcdef");
        assert_eq!(r.redact("abcdef abc"), "[redacted] [redacted]");
    }
}
