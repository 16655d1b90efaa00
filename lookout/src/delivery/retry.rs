//! When to try a request again, and how long to wait first.
//!
//! The rules, shared by the [`Transport`](crate::Transport) that retries within its
//! budget and by anything that schedules its own retries (a durable worker):
//!
//! - **Tried again:** connection errors, timeouts, and the answers `408`, `425`, `429`,
//!   `500`, `502`, `503`, `504`.
//! - **Never tried again:** every other `4xx` (the request itself is wrong: another try
//!   gets the same answer), `3xx` (redirects are not followed: a failure), `410 Gone`
//!   (the target asks never to be sent to again: "disabled"), `501` and other `5xx`.
//! - **How long to wait:** what the target asked for (`Retry-After` in seconds or as an
//!   HTTP date, else where the service declares its platform puts a wait: a field of
//!   the body or another header, see [`Wait`](super::answers::Wait)), else exponential backoff with full jitter: a
//!   random pause between zero and `backoff × 2^(try − 1)`, capped at `max_backoff`.

use std::time::{Duration, SystemTime};

use rand::Rng as _;
use serde_json::Value;

/// Whether one attempt's result is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Done: delivered, or failed in a way another try will not change.
    No,
    /// Another try may succeed; `after` is how long the target asked us to wait.
    Yes { after: Option<Duration> },
    /// The failure was this machine's (out of file descriptors or memory), not the
    /// target's: try again soon, and count it against no retry schedule.
    Local,
}

impl Retry {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Retry::Yes { .. } | Retry::Local)
    }

    /// The wait the target asked for, if any.
    pub fn after(&self) -> Option<Duration> {
        match self {
            Retry::Yes { after } => *after,
            Retry::No | Retry::Local => None,
        }
    }
}

/// Whether an answer with this status is worth another try.
pub fn status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

/// How long the target asked to wait before the next try: the `Retry-After` header
/// (seconds, or an HTTP date), else `in_answer`, the wait the platform asked for in its
/// own way (a field of the body, another header: [`Wait`](super::answers::Wait)).
pub fn retry_after(
    header: Option<&str>,
    in_answer: Option<Duration>,
    now: SystemTime,
) -> Option<Duration> {
    header
        .and_then(|value| parse_retry_after(value, now))
        .or(in_answer)
}

/// The longest wait a target can ask for: a longer one is taken as this (it also keeps
/// `now + wait` far from overflowing for callers that schedule with it).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// A `Retry-After` header value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
/// A date in the past means "now"; anything beyond [`MAX_RETRY_AFTER`] is capped.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    // Not allowed by the RFC, but sent by some: fractional seconds.
    if let Some(duration) = value.parse::<f64>().ok().and_then(seconds_to_duration) {
        return Some(duration);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// A wait in seconds at `pointer` (`/retry_after`, `/parameters/retry_after`) in a JSON
/// body: a number, maybe fractional, or a string holding one; capped at
/// [`MAX_RETRY_AFTER`].
pub fn json_seconds(body: &[u8], pointer: &str) -> Option<Duration> {
    seconds_to_duration(json_number(body, pointer)?)
}

/// A wait in milliseconds at `pointer` (`/retry_after_ms`) in a JSON body, as
/// [`json_seconds`] reads seconds.
pub fn json_millis(body: &[u8], pointer: &str) -> Option<Duration> {
    seconds_to_duration(json_number(body, pointer)? / 1000.0)
}

fn json_number(body: &[u8], pointer: &str) -> Option<f64> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match value.pointer(pointer)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Seconds as a wait: negative, NaN and infinite are not waits; long ones are capped.
fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// The longest pause before try number `retry` + 1 (`retry` ≥ 1):
/// `base × 2^(retry − 1)`, at most `cap`.
pub fn backoff_ceiling(retry: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(cap)
}

/// The pause before try number `retry` + 1: full jitter, a random time between zero and
/// [`backoff_ceiling`], so that many senders failing at once do not retry at once.
pub fn backoff(retry: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = backoff_ceiling(retry, base, cap);
    if ceiling.is_zero() {
        return ceiling;
    }
    let nanos = rand::rng().random_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64);
    Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statuses_are_retried() {
        for status in [408, 425, 429, 500, 502, 503, 504] {
            assert!(status_is_retryable(status), "{status}");
        }
        for status in [
            200, 301, 302, 400, 401, 403, 404, 409, 410, 413, 422, 501, 505,
        ] {
            assert!(!status_is_retryable(status), "{status}");
        }
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        for bad in ["", "soon", "-5", "NaN", "inf", "-0.5"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
        for huge in [
            "18446744073709551615",
            "1e300",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(
                parse_retry_after(huge, now),
                Some(MAX_RETRY_AFTER),
                "{huge:?}"
            );
        }
    }

    #[test]
    fn waits_in_json_bodies() {
        let seconds = |body: &[u8]| json_seconds(body, "/retry_after");
        assert_eq!(
            seconds(br#"{"retry_after":0.35}"#),
            Some(Duration::from_millis(350))
        );
        assert_eq!(
            json_seconds(
                br#"{"parameters":{"retry_after":"5"}}"#,
                "/parameters/retry_after"
            ),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            json_millis(br#"{"retry_after_ms":2500}"#, "/retry_after_ms"),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(seconds(b"<html>slow down</html>"), None);
        assert_eq!(seconds(br#"{"retry_after":-1}"#), None);
        assert_eq!(seconds(br#"{"retry_after":1e9}"#), Some(MAX_RETRY_AFTER));
        assert_eq!(seconds(br#"{"retry_after":null}"#), None);
    }

    #[test]
    fn the_header_wins_over_the_body() {
        let now = SystemTime::now();
        let in_body = Some(Duration::from_secs(9));
        assert_eq!(
            retry_after(Some("2"), in_body, now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(Some("garbage"), in_body, now),
            Some(Duration::from_secs(9))
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        assert_eq!(backoff_ceiling(1, base, cap), Duration::from_millis(100));
        assert_eq!(backoff_ceiling(2, base, cap), Duration::from_millis(200));
        assert_eq!(backoff_ceiling(4, base, cap), Duration::from_millis(800));
        assert_eq!(backoff_ceiling(5, base, cap), cap);
        assert_eq!(backoff_ceiling(u32::MAX, base, cap), cap);
        let pauses: Vec<Duration> = (0..200).map(|_| backoff(3, base, cap)).collect();
        assert!(pauses.iter().all(|p| *p <= Duration::from_millis(400)));
        // Full jitter spreads pauses over the whole range, not around one value.
        assert!(pauses.iter().any(|p| *p < Duration::from_millis(100)));
        assert!(pauses.iter().any(|p| *p > Duration::from_millis(300)));
    }
}
