//! What the transport asks of the platform it sends to: its pace and how to read its
//! answers. Services declare these (`rate_limit`, `answers`, `wait` and `limits` in
//! `service!`, and rarely `Service::verdict` by hand); the registry hands them over
//! through this trait, so the way out does not depend on the registry.

use std::time::{Duration, SystemTime};

use super::answers::{Answer, Verdict};
use super::ratelimit::RateLimit;
use crate::limits::Limits;

/// A platform as the transport sees it.
pub trait Platform: Send + Sync {
    /// How fast one target may be sent to (`None`: full speed).
    fn rate_limit(&self) -> Option<RateLimit>;

    /// A wait the platform asked for in its own way (a field of the body, a header),
    /// besides `Retry-After`.
    fn wait_asked(&self, answer: &Answer<'_>, now: SystemTime) -> Option<Duration>;

    /// What an answer means beyond its status.
    fn verdict(&self, answer: &Answer<'_>) -> Verdict;

    /// Its size limits, which every message sent to it is kept within.
    fn limits(&self) -> &Limits {
        &Limits::UNDECLARED
    }
}

/// The error code and message in a JSON answer, for platforms that put them there
/// whatever the status (`{"errcode": 93000, "errmsg": "…"}`): the integer in the field
/// `code` and the text in the field `message` (empty when missing); `None` when the
/// answer has no such code.
pub fn answer_code(answer_body: &[u8], code: &str, message: &str) -> Option<(i64, String)> {
    let answer: serde_json::Value = serde_json::from_slice(answer_body).ok()?;
    let number = answer.get(code)?.as_i64()?;
    let said = answer
        .get(message)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    Some((number, said.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::answer_code;

    #[test]
    fn answer_codes_are_read_from_the_named_fields() {
        let body = br#"{"errcode": 93000, "errmsg": "invalid webhook url"}"#;
        let read = answer_code(body, "errcode", "errmsg");
        assert_eq!(read, Some((93000, "invalid webhook url".to_owned())));
        assert_eq!(
            answer_code(br#"{"code": 0}"#, "code", "msg"),
            Some((0, String::new()))
        );
        assert_eq!(answer_code(body, "code", "msg"), None);
        assert_eq!(answer_code(b"<html>", "code", "msg"), None);
    }
}
