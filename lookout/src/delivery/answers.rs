//! How a platform's answers are read, declared: `answers:` and `wait:` in
//! [`service!`](crate::service!). The status alone decides for most targets (see
//! [`retry`](super::retry)); a platform that says more declares where it says it and
//! what its words mean, and the engine reads every answer the same way:
//!
//! - **where the platform puts its code** ([`Code`]): the status, a JSON field (with its
//!   message), the whole body (Slack's `no_service`), or an AWS API error;
//! - **what each code means** ([`Means`]): gone (the target is disabled), refused for
//!   good, or refused for now (tried again), optionally only with some statuses;
//! - **what an unlisted code means** ([`Unlisted`]): the status decides, or, for
//!   platforms that answer every error inside a `200` with a code, a refusal;
//! - **where it asks for a wait** ([`Wait`]), besides `Retry-After`: a JSON field in
//!   seconds or milliseconds, or a header in seconds or as a moment.
//!
//! A platform whose answers need more than a table (words inside a sentence, two fields
//! at once) still implements [`Service::verdict`](crate::Service::verdict) by hand: the
//! engine asks it when the declaration leaves the answer to the status.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

/// The headers an [`Answer`] holds (reqwest's, re-exported for callers that make one).
pub use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::retry;

/// What a platform's answer means when its status alone does not say it. Several
/// platforms answer `200` with an error code in the body, and several say "this hook is
/// gone" with a status that means something else elsewhere (Slack: `404 no_service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The status decides, as for any HTTP target (see docs/DELIVERY.md).
    ByStatus,
    /// The target is gone for good (a deleted webhook, a revoked token): disable it, with
    /// this plain reason, and never send there again until an operator re-enables it.
    Gone(String),
    /// The platform refused the message (even with a `2xx`), for this reason; `retry`
    /// says whether another try could do better.
    Refused { reason: String, retry: bool },
}

/// What a platform answered, as its declaration reads it: the status, the headers and
/// at most `max_response_bytes` of the body.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

static NO_HEADERS: LazyLock<HeaderMap> = LazyLock::new(HeaderMap::new);

impl<'a> Answer<'a> {
    /// An answer without headers (tests, tables of a platform's codes).
    pub fn new(status: u16, body: &'a [u8]) -> Answer<'a> {
        Answer {
            status,
            headers: &NO_HEADERS,
            body,
        }
    }

    /// The header `name`'s value, when it is text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How one platform's answers are read (see the module docs). Build it with
/// [`Answers::status`], [`Answers::json`], [`Answers::error_codes`], [`Answers::body`]
/// or [`Answers::aws`]; [`Answers::BY_STATUS`] (the default) reads nothing.
#[derive(Debug, Clone, Copy)]
pub struct Answers {
    /// How reasons name the platform (`"Microsoft Teams"`).
    pub platform: &'static str,
    /// Where it says what happened.
    pub code: Code,
    /// What its codes mean; the first entry that matches decides.
    pub meanings: &'static [Means],
    /// What a code no entry lists means.
    pub unlisted: Unlisted,
    /// Where it asks for a wait, besides `Retry-After` (which every answer is read for,
    /// and which wins).
    pub wait: Option<Wait>,
}

/// Where a platform puts the code that says what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Nowhere but the HTTP status: the codes are statuses (`"404"`).
    Status,
    /// A JSON field at the pointer `code` (a number or a word), with its message at the
    /// pointer `message` (`""`: none), which reasons quote.
    Json {
        code: &'static str,
        message: &'static str,
    },
    /// The whole body, trimmed: a word (`no_service`).
    Body,
    /// An AWS API's error, in a `4xx` or `5xx`: `__type` (after its `#`) and `message`
    /// in a JSON body, or `<Code>` and `<Message>` in an XML one. Besides the service's
    /// own codes, the ones every AWS API shares are read ([`AWS_ERRORS`]).
    Aws,
}

/// What a code no entry lists means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    /// The status decides.
    ByStatus,
    /// A refusal another try would only repeat (`"DingTalk: 310000: sign not match"`),
    /// unless it is the platform's code for success (`"0"`): for platforms that answer
    /// every request with a code, errors inside a `200` included.
    RefusedUnless(&'static str),
}

/// What one or more codes mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Means {
    /// The codes as the platform writes them (`"404"`, `"93000"`, `"M_FORBIDDEN"`).
    pub codes: &'static [&'static str],
    /// Only with these statuses (empty: with any).
    pub statuses: &'static [u16],
    pub meaning: Meaning,
    /// Why, in plain words, for the reason shown.
    pub why: &'static str,
}

/// What an answer means, beyond its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// The target is gone for good: it is disabled.
    Gone,
    /// Refused; another try would only repeat it.
    Refused,
    /// Refused for now (sending too fast): tried again, after the wait asked for.
    TryAgain,
}

impl Means {
    /// `codes` mean the target is gone (a deleted webhook, a revoked token).
    pub const fn gone(codes: &'static [&'static str], why: &'static str) -> Means {
        Means::new(codes, Meaning::Gone, why)
    }

    /// `codes` are a refusal another try would only repeat.
    pub const fn refused(codes: &'static [&'static str], why: &'static str) -> Means {
        Means::new(codes, Meaning::Refused, why)
    }

    /// `codes` are a refusal for now: tried again.
    pub const fn try_again(codes: &'static [&'static str], why: &'static str) -> Means {
        Means::new(codes, Meaning::TryAgain, why)
    }

    /// Only when the status is one of `statuses`.
    pub const fn with_status(self, statuses: &'static [u16]) -> Means {
        Means { statuses, ..self }
    }

    const fn new(codes: &'static [&'static str], meaning: Meaning, why: &'static str) -> Means {
        Means {
            codes,
            statuses: &[],
            meaning,
            why,
        }
    }

    /// What it does, for the docs.
    fn docs(&self) -> String {
        let does = match self.meaning {
            Meaning::Gone => "the target is disabled",
            Meaning::Refused => "refused for good",
            Meaning::TryAgain => "tried again later",
        };
        format!("{does} ({})", self.why)
    }

    fn matches(&self, code: &str, status: u16) -> bool {
        self.codes.contains(&code) && (self.statuses.is_empty() || self.statuses.contains(&status))
    }
}

/// The codes every AWS API answers for refused credentials (final: the same keys are
/// refused again) and for throttling (tried again).
pub const AWS_ERRORS: &[Means] = &[
    Means::refused(
        &[
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
            "IncompleteSignature",
            "MissingAuthenticationToken",
            "ExpiredToken",
            "ExpiredTokenException",
            "InvalidAccessKeyId",
            "RequestExpired",
            "RequestTimeTooSkewed",
            "AuthorizationError",
            "AccessDenied",
            "AccessDeniedException",
            "InvalidSecurity",
            "OptInRequired",
        ],
        "the credentials or their permissions were refused",
    ),
    Means::try_again(
        &[
            "Throttled",
            "Throttling",
            "ThrottlingException",
            "RequestThrottled",
            "KMSThrottling",
            "KmsThrottled",
            "TooManyRequestsException",
            "SlowDown",
        ],
        "sending too fast",
    ),
];

/// Where a platform asks for a wait in its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Seconds (maybe fractional, maybe a string) at a JSON pointer
    /// (`/retry_after`, `/parameters/retry_after`).
    BodySeconds(&'static str),
    /// Milliseconds at a JSON pointer (`/retry_after_ms`).
    BodyMillis(&'static str),
    /// Seconds in a header (`X-RateLimit-Reset-After`), read as `Retry-After`.
    HeaderSeconds(&'static str),
    /// The moment the limit resets, in a header (`X-RateLimit-Reset`): Unix seconds,
    /// an RFC 3339 time or an HTTP date.
    HeaderUntil(&'static str),
}

impl Wait {
    /// How long `answer` asks to wait, capped at [`retry::MAX_RETRY_AFTER`]; a moment in
    /// the past is no wait.
    pub fn read(&self, answer: &Answer<'_>, now: SystemTime) -> Option<Duration> {
        match *self {
            Wait::BodySeconds(pointer) => retry::json_seconds(answer.body, pointer),
            Wait::BodyMillis(pointer) => retry::json_millis(answer.body, pointer),
            Wait::HeaderSeconds(name) => retry::parse_retry_after(answer.header(name)?, now),
            Wait::HeaderUntil(name) => until(answer.header(name)?.trim(), now),
        }
    }
}

impl Wait {
    /// Where the wait is read, for the docs.
    fn docs(&self) -> String {
        match *self {
            Wait::BodySeconds(at) => format!("`{at}` in the body (seconds)"),
            Wait::BodyMillis(at) => format!("`{at}` in the body (milliseconds)"),
            Wait::HeaderSeconds(name) => format!("the header `{name}` (seconds)"),
            Wait::HeaderUntil(name) => format!("the header `{name}` (the moment it ends)"),
        }
    }
}

/// The wait until `moment`: Unix seconds, RFC 3339 or an HTTP date.
fn until(moment: &str, now: SystemTime) -> Option<Duration> {
    let when = match moment.parse::<f64>() {
        Ok(unix) if unix.is_finite() && unix >= 0.0 => {
            let unix = unix.min(now_unix(now) + retry::MAX_RETRY_AFTER.as_secs_f64());
            SystemTime::UNIX_EPOCH + Duration::from_secs_f64(unix)
        }
        Ok(_) => return None,
        Err(_) => humantime::parse_rfc3339_weak(moment)
            .or_else(|_| httpdate::parse_http_date(moment).map_err(|_| ()))
            .ok()?,
    };
    Some(
        when.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(retry::MAX_RETRY_AFTER),
    )
}

fn now_unix(now: SystemTime) -> f64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Answers {
    /// Reads nothing: the status decides, `Retry-After` is the only wait.
    pub const BY_STATUS: Answers = Answers {
        platform: "",
        code: Code::Status,
        meanings: &[],
        unlisted: Unlisted::ByStatus,
        wait: None,
    };

    /// Statuses that mean more on this platform (`401`: the token was revoked).
    pub const fn status(platform: &'static str, meanings: &'static [Means]) -> Answers {
        Answers::read(platform, Code::Status, meanings)
    }

    /// A code in a JSON field at the pointer `code`, its message at `message` (`""`:
    /// none); unlisted codes leave it to the status.
    pub const fn json(
        platform: &'static str,
        code: &'static str,
        message: &'static str,
        meanings: &'static [Means],
    ) -> Answers {
        Answers::read(platform, Code::Json { code, message }, meanings)
    }

    /// A platform that answers every request with an error code in a JSON field
    /// (`{"errcode": 93000, "errmsg": "…"}`), `200` included: `0` is success, the codes
    /// in `meanings` mean what they say, and every other code is a refusal another try
    /// would only repeat.
    pub const fn error_codes(
        platform: &'static str,
        code: &'static str,
        message: &'static str,
        meanings: &'static [Means],
    ) -> Answers {
        Answers {
            unlisted: Unlisted::RefusedUnless("0"),
            ..Answers::json(platform, code, message, meanings)
        }
    }

    /// A word that is the whole body (`no_service`).
    pub const fn body(platform: &'static str, meanings: &'static [Means]) -> Answers {
        Answers::read(platform, Code::Body, meanings)
    }

    /// An AWS API: its own codes in `meanings`, then [`AWS_ERRORS`].
    pub const fn aws(platform: &'static str, meanings: &'static [Means]) -> Answers {
        Answers::read(platform, Code::Aws, meanings)
    }

    /// The same, also reading a wait where the platform puts one.
    pub const fn wait(self, wait: Wait) -> Answers {
        Answers {
            wait: Some(wait),
            ..self
        }
    }

    const fn read(platform: &'static str, code: Code, meanings: &'static [Means]) -> Answers {
        Answers {
            platform,
            code,
            meanings,
            unlisted: Unlisted::ByStatus,
            wait: None,
        }
    }

    /// What `answer` means, as declared.
    pub fn verdict(&self, answer: &Answer<'_>) -> Verdict {
        match self.code_in(answer) {
            Some((code, said)) => self.code_means(&code, &said, answer.status),
            None => Verdict::ByStatus,
        }
    }

    /// What `code` (with the message `said`, in an answer with `status`) means, as
    /// declared: for a hand-written [`Service::verdict`](crate::Service::verdict) that
    /// finds a code where no [`Code`] points (EventBridge's refused entries inside a
    /// `200`), so that it still reads the declared table.
    pub fn code_means(&self, code: &str, said: &str, status: u16) -> Verdict {
        let common: &[Means] = match self.code {
            Code::Aws => AWS_ERRORS,
            _ => &[],
        };
        let mut listed = self.meanings.iter().chain(common);
        match listed.find(|m| m.matches(code, status)) {
            Some(means) => self.listed(means, code, said),
            None => match self.unlisted {
                Unlisted::RefusedUnless(success) if code != success => Verdict::Refused {
                    reason: self.reason(code, said),
                    retry: false,
                },
                _ => Verdict::ByStatus,
            },
        }
    }

    /// What the docs say of the declaration: how answers beyond the status are read,
    /// one Markdown bullet each, and where a wait is read.
    pub fn docs(&self) -> String {
        let mut lines = Vec::new();
        let common: &[Means] = match self.code {
            Code::Aws => AWS_ERRORS,
            _ => &[],
        };
        for means in self.meanings.iter().chain(common) {
            lines.push(format!("- {}: {}", self.docs_codes(means), means.docs()));
        }
        if let Unlisted::RefusedUnless(success) = self.unlisted {
            lines.push(format!(
                "- any other code but `{success}`: refused for good, saying the code and its message"
            ));
        }
        let mut wait = "`Retry-After`".to_owned();
        if let Some(asked) = self.wait {
            wait.push_str(&format!(", else {}", asked.docs()));
        }
        lines.push(format!("- a wait asked for is read from {wait}"));
        lines.join("\n") + "\n"
    }

    /// The codes of `means` as the docs show them, with where they are read.
    fn docs_codes(&self, means: &Means) -> String {
        let codes: Vec<String> = means.codes.iter().map(|c| format!("`{c}`")).collect();
        let codes = codes.join(", ");
        let statuses: Vec<String> = means.statuses.iter().map(u16::to_string).collect();
        let with = match statuses.as_slice() {
            [] => String::new(),
            some => format!(" with HTTP {}", some.join(" or ")),
        };
        match self.code {
            Code::Status => format!("HTTP {codes}"),
            Code::Json { code, .. } => format!("{codes} in `{code}`{with}"),
            Code::Body => format!("a body of {codes}{with}"),
            Code::Aws => format!("AWS error {codes}{with}"),
        }
    }

    /// How long `answer` asks to wait in the platform's own way, if it does.
    pub fn wait_asked(&self, answer: &Answer<'_>, now: SystemTime) -> Option<Duration> {
        self.wait?.read(answer, now)
    }

    fn listed(&self, means: &Means, code: &str, said: &str) -> Verdict {
        let reason = match self.code {
            // The status already opens the reason (`HTTP 404: gone: …`).
            Code::Status => format!("{}: {}", self.platform, means.why),
            _ => format!(
                "{}: {} ({})",
                self.platform,
                means.why,
                code_said(code, said)
            ),
        };
        match means.meaning {
            Meaning::Gone => Verdict::Gone(reason),
            Meaning::Refused => Verdict::Refused {
                reason,
                retry: false,
            },
            Meaning::TryAgain => Verdict::Refused {
                reason,
                retry: true,
            },
        }
    }

    /// `Platform: code: message`.
    fn reason(&self, code: &str, said: &str) -> String {
        format!("{}: {}", self.platform, code_said(code, said))
    }

    /// The code and message in `answer`, where the platform puts them.
    fn code_in(&self, answer: &Answer<'_>) -> Option<(String, String)> {
        match self.code {
            Code::Status => Some((answer.status.to_string(), String::new())),
            Code::Json { code, message } => {
                let json: Value = serde_json::from_slice(answer.body).ok()?;
                let code = match json.pointer(code)? {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return None,
                };
                let said = match message {
                    "" => None,
                    pointer => json.pointer(pointer).and_then(Value::as_str),
                };
                Some((code, said.unwrap_or_default().to_owned()))
            }
            Code::Body => {
                let text = std::str::from_utf8(answer.body).ok()?.trim();
                Some((text.to_owned(), String::new()))
            }
            Code::Aws => aws_error(answer),
        }
    }
}

/// `code: message`, or the code alone when the platform said nothing more.
fn code_said(code: &str, said: &str) -> String {
    match said {
        "" => code.to_owned(),
        said => format!("{code}: {said}"),
    }
}

/// An AWS API's error code and message: JSON (`{"__type": "…#Code", "message": …}`, the
/// JSON protocols; some APIs write `Message`) or XML (`<Code>` and `<Message>`, the
/// query and REST-XML protocols). A `3xx` is read too: S3 answers a bucket in another
/// region with `301` and `PermanentRedirect`.
fn aws_error(answer: &Answer<'_>) -> Option<(String, String)> {
    if answer.status < 300 {
        return None;
    }
    if let Ok(json) = serde_json::from_slice::<Value>(answer.body) {
        let kind = json["__type"].as_str()?;
        let code = kind.rsplit('#').next().unwrap_or_default();
        let said = json["message"]
            .as_str()
            .or_else(|| json["Message"].as_str());
        let said = said.unwrap_or_default();
        return Some((code.to_owned(), said.to_owned()));
    }
    let text = String::from_utf8_lossy(answer.body);
    let code = between(&text, "<Code>", "</Code>")?;
    let said = between(&text, "<Message>", "</Message>").unwrap_or_default();
    Some((code.to_owned(), said.to_owned()))
}

/// The text between the first `start` and the `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(start)?;
    rest.split_once(end).map(|(inside, _)| inside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(verdict: Verdict) -> &'static str {
        match verdict {
            Verdict::ByStatus => "by status",
            Verdict::Gone(_) => "gone",
            Verdict::Refused { retry: false, .. } => "final",
            Verdict::Refused { retry: true, .. } => "retry",
        }
    }

    #[test]
    fn statuses_that_mean_gone() {
        const TEAMS: Answers =
            Answers::status("Teams", &[Means::gone(&["404"], "the workflow is gone")]);
        assert_eq!(
            TEAMS.verdict(&Answer::new(404, b"")),
            Verdict::Gone("Teams: the workflow is gone".into())
        );
        assert_eq!(TEAMS.verdict(&Answer::new(400, b"")), Verdict::ByStatus);
        assert_eq!(
            Answers::BY_STATUS.verdict(&Answer::new(404, b"")),
            Verdict::ByStatus
        );
    }

    #[test]
    fn error_codes_inside_a_200() {
        const ROBOT: Answers = Answers::error_codes(
            "Robot",
            "/errcode",
            "/errmsg",
            &[
                Means::gone(&["93000"], "the robot is gone"),
                Means::try_again(&["45009"], "too many messages"),
            ],
        );
        let read = |body: &str| ROBOT.verdict(&Answer::new(200, body.as_bytes()));
        assert_eq!(
            read(r#"{"errcode": 93000, "errmsg": "invalid webhook url"}"#),
            Verdict::Gone("Robot: the robot is gone (93000: invalid webhook url)".into())
        );
        assert_eq!(kind(read(r#"{"errcode": 45009}"#)), "retry");
        assert_eq!(
            read(r#"{"errcode": 310000, "errmsg": "sign not match"}"#),
            Verdict::Refused {
                reason: "Robot: 310000: sign not match".into(),
                retry: false
            }
        );
        assert_eq!(read(r#"{"errcode": 0, "errmsg": "ok"}"#), Verdict::ByStatus);
        assert_eq!(read("<html>"), Verdict::ByStatus);
        assert_eq!(read(r#"{"code": 93000}"#), Verdict::ByStatus);
    }

    #[test]
    fn codes_can_ask_for_a_status_too() {
        const HEC: Answers = Answers::json(
            "HEC",
            "/code",
            "/text",
            &[Means::gone(&["1"], "the token is disabled").with_status(&[403])],
        );
        let body = br#"{"text": "Token disabled", "code": 1}"#;
        assert_eq!(
            HEC.verdict(&Answer::new(403, body)),
            Verdict::Gone("HEC: the token is disabled (1: Token disabled)".into())
        );
        assert_eq!(HEC.verdict(&Answer::new(400, body)), Verdict::ByStatus);
        const WORDS: Answers =
            Answers::json("M", "/errcode", "", &[Means::gone(&["M_GONE"], "gone")]);
        let body = br#"{"errcode": "M_GONE", "error": "x"}"#;
        assert_eq!(
            WORDS.verdict(&Answer::new(403, body)),
            Verdict::Gone("M: gone (M_GONE)".into())
        );
    }

    #[test]
    fn a_word_that_is_the_whole_body() {
        const HOOK: Answers = Answers::body("Hook", &[Means::gone(&["no_service"], "removed")]);
        assert_eq!(
            kind(HOOK.verdict(&Answer::new(404, b" no_service\n"))),
            "gone"
        );
        assert_eq!(
            kind(HOOK.verdict(&Answer::new(404, b"no_service!"))),
            "by status"
        );
    }

    #[test]
    fn aws_errors_in_json_and_xml_share_one_list() {
        const QUEUE: Answers =
            Answers::aws("Q", &[Means::gone(&["QueueDoesNotExist"], "no queue")]);
        let json =
            |code: &str| format!(r#"{{"__type": "com.amazonaws.sqs#{code}", "message": "no"}}"#);
        let xml = |code: &str| {
            format!(
                "<ErrorResponse><Error><Code>{code}</Code><Message>no</Message></Error></ErrorResponse>"
            )
        };
        for body in [json as fn(&str) -> String, xml] {
            let read =
                |status, code| kind(QUEUE.verdict(&Answer::new(status, body(code).as_bytes())));
            assert_eq!(read(400, "QueueDoesNotExist"), "gone");
            assert_eq!(read(403, "InvalidClientTokenId"), "final");
            assert_eq!(read(403, "AuthorizationError"), "final");
            assert_eq!(read(400, "ThrottlingException"), "retry");
            assert_eq!(read(403, "InvalidAccessKeyId"), "final");
            assert_eq!(read(400, "ExpiredTokenException"), "final");
            assert_eq!(read(503, "SlowDown"), "retry");
            assert_eq!(read(400, "TooManyRequestsException"), "retry");
            assert_eq!(read(500, "InternalError"), "by status");
            assert_eq!(read(200, "QueueDoesNotExist"), "by status");
        }
    }

    #[test]
    fn aws_redirects_capitalised_messages_and_codes_found_by_hand() {
        const BUCKET: Answers = Answers::aws(
            "S3",
            &[Means::refused(
                &["PermanentRedirect"],
                "the bucket is in another region",
            )],
        );
        let xml = b"<Error><Code>PermanentRedirect</Code><Message>Use the other endpoint</Message></Error>";
        assert_eq!(
            BUCKET.verdict(&Answer::new(301, xml)),
            Verdict::Refused {
                reason: "S3: the bucket is in another region (PermanentRedirect: Use the other endpoint)".into(),
                retry: false
            }
        );
        let json = br#"{"__type": "AccessDeniedException", "Message": "not allowed"}"#;
        assert_eq!(
            BUCKET.verdict(&Answer::new(400, json)),
            Verdict::Refused {
                reason: "S3: the credentials or their permissions were refused (AccessDeniedException: not allowed)".into(),
                retry: false
            }
        );
        assert_eq!(kind(BUCKET.code_means("SlowDown", "", 200)), "retry");
        assert_eq!(kind(BUCKET.code_means("Unknown", "", 200)), "by status");
    }

    #[test]
    fn the_docs_say_what_each_code_does_and_where_the_wait_is() {
        const ROBOT: Answers = Answers::error_codes(
            "Robot",
            "/errcode",
            "/errmsg",
            &[Means::gone(&["93000"], "the robot is gone").with_status(&[200])],
        )
        .wait(Wait::BodySeconds("/retry_after"));
        assert_eq!(
            ROBOT.docs(),
            "- `93000` in `/errcode` with HTTP 200: the target is disabled (the robot is gone)\n\
             - any other code but `0`: refused for good, saying the code and its message\n\
             - a wait asked for is read from `Retry-After`, else `/retry_after` in the body (seconds)\n"
        );
        assert_eq!(
            Answers::BY_STATUS.docs(),
            "- a wait asked for is read from `Retry-After`\n"
        );
    }

    #[test]
    fn waits_in_the_body_or_in_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let body = br#"{"retry_after": 0.5, "parameters": {"retry_after_ms": 2500}}"#;
        let answer = Answer::new(429, body);
        assert_eq!(
            Wait::BodySeconds("/retry_after").read(&answer, now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            Wait::BodyMillis("/parameters/retry_after_ms").read(&answer, now),
            Some(Duration::from_millis(2500))
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset-after", "1.5".parse().unwrap());
        headers.insert("x-ratelimit-reset", "1700000030".parse().unwrap());
        let answer = Answer {
            headers: &headers,
            ..answer
        };
        assert_eq!(
            Wait::HeaderSeconds("X-RateLimit-Reset-After").read(&answer, now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            Wait::HeaderUntil("X-RateLimit-Reset").read(&answer, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(Wait::HeaderUntil("X-Missing").read(&answer, now), None);
    }

    #[test]
    fn moments_are_read_in_every_form_and_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(until("2023-11-14T22:13:20Z", now), Some(Duration::ZERO));
        assert_eq!(
            until("2023-11-14T22:14:20.000Z", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            until("Tue, 14 Nov 2023 22:13:30 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(until("1", now), Some(Duration::ZERO));
        assert_eq!(until("1e300", now), Some(retry::MAX_RETRY_AFTER));
        assert_eq!(until("-5", now), None);
        assert_eq!(until("NaN", now), None);
        assert_eq!(until("soon", now), None);
    }
}
