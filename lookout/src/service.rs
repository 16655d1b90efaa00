//! The `Service` trait and the registry every service file adds itself to.

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

use crate::delivery::answers::{Answer, Answers};
use crate::delivery::ratelimit::RateLimit;
use crate::delivery::{Delivery, Platform, Transport, Verdict};
use crate::error::BuildError;
use crate::job::Job;
use crate::limits::{Limits, build_within};
use crate::options::Schema;
use crate::payload::Event;
use crate::request::Outgoing;

/// What sort of destination a service is: the catalogue and `lookout services` group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A chat room or channel (Slack, Zulip, Discord, Teams, Matrix…).
    Chat,
    /// A notification to people's devices or inboxes (ntfy, Pushover, email, SMS…).
    Push,
    /// An incident or alerting platform (PagerDuty, Opsgenie…).
    Incident,
    /// An event or log store (Splunk, Datadog…).
    Observability,
    /// A message broker or queue (RabbitMQ, MQTT, NATS, Redis, SQS…).
    Broker,
    /// A plain endpoint that takes the payload itself (webhooks, bots).
    Webhook,
}

impl Category {
    /// Every category, in the order the catalogue shows them.
    pub const ALL: [Category; 6] = [
        Category::Chat,
        Category::Push,
        Category::Incident,
        Category::Observability,
        Category::Broker,
        Category::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Chat => "chat",
            Category::Push => "push",
            Category::Incident => "incident",
            Category::Observability => "observability",
            Category::Broker => "broker",
            Category::Webhook => "webhook",
        }
    }
}

/// One outside service. Implement it on a unit struct and register it with
/// [`service!`](crate::service!); the doc comments on the struct are its title and
/// install docs.
#[async_trait]
pub trait Service: Send + Sync + 'static {
    /// What an answer from this platform means beyond its status, when a table of codes
    /// cannot say it (declare those with `answers:` in [`service!`](crate::service!)):
    /// words inside a sentence, two fields at once. Asked only when the declared
    /// answers leave it to the status. The default, [`Verdict::ByStatus`], lets the
    /// status decide. Called with at most `max_response_bytes` of the body.
    fn verdict(&self, _status: u16, _answer_body: &[u8]) -> Verdict {
        Verdict::ByStatus
    }

    /// Turns an event into the requests to send. No I/O here.
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError>;

    /// Sends the event: the only way an event leaves for a service, whoever sends it
    /// (the library, `lookout send` and `test`, the workers of `lookout serve`). The
    /// default builds the requests and hands them to the engine's transport (timeouts,
    /// retries, signing, guards); override only for a transport that is not a list of
    /// independent requests, and build through [`build_within`] with
    /// [`Transport::limits`] and send through [`Transport::send_all`] all the same.
    async fn send(&self, job: &Job<'_>, transport: &Transport) -> Vec<Delivery> {
        match build_within(transport.limits(), job, |job| self.build(job)) {
            Ok(outgoing) => transport.send_all(outgoing, job).await,
            Err(err) => vec![Delivery::not_sent(err, job.options.redactor())],
        }
    }
}

/// A service as the registry holds it: what the service declares in
/// [`service!`](crate::service!), and its behaviour.
pub struct Registration {
    /// `module_path!()` of the service's file; its last segment is the service's name.
    pub module: &'static str,
    /// The doc comments on the service struct, one line each.
    pub docs: &'static str,
    /// What sort of destination it is.
    pub category: Category,
    /// The events it listens to: `Model.action` patterns where `*` matches one word
    /// (`*.created`, `Item.*`), or `*` for every event. Declared default: `*.created`.
    pub events: &'static [&'static str],
    /// How fast the engine may send to one of its targets, when the platform limits it
    /// (chat webhooks: [`RateLimit::CHAT_WEBHOOK`]); `None` (the default) is full speed.
    /// Shown in its docs.
    pub rate_limit: Option<RateLimit>,
    /// Its platform's size limits: what the engine keeps every message it sends within
    /// (see [`crate::limits`]). Shown in its docs.
    pub limits: Limits,
    /// How its platform's answers are read: codes that mean "gone" or a refusal, and
    /// where it asks for a wait ([`Answers::BY_STATUS`] when it says nothing more than
    /// its status and `Retry-After`).
    pub answers: Answers,
    /// The options it takes.
    pub schema: Schema,
    /// A working example configuration (TOML, the body of a `[services.NAME]` table),
    /// shown in the docs and used by the tests.
    pub example: &'static str,
    pub service: &'static dyn Service,
}

impl Registration {
    /// The service's name: its file's name.
    pub fn name(&self) -> &'static str {
        self.module.rsplit("::").next().unwrap_or(self.module)
    }

    /// The first line of the doc comments.
    pub fn title(&self) -> &'static str {
        self.docs
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }

    /// The Markdown install docs: the doc comments after the title.
    pub fn description(&self) -> String {
        let mut lines = self
            .docs
            .lines()
            .skip_while(|l| l.trim().is_empty())
            .skip(1);
        let body: Vec<&str> = lines
            .by_ref()
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect();
        body.join("\n").trim().to_owned() + "\n"
    }

    /// Whether this service wants events of this kind.
    pub fn listens_to(&self, event: &Event) -> bool {
        self.events
            .iter()
            .any(|pattern| pattern_matches(pattern, &event.model, &event.action))
    }

    /// What `answer` means: as the service declares its answers, else as its own
    /// [`Service::verdict`] reads it.
    pub fn verdict_on(&self, answer: &Answer<'_>) -> Verdict {
        match self.answers.verdict(answer) {
            Verdict::ByStatus => self.service.verdict(answer.status, answer.body),
            declared => declared,
        }
    }

    /// How long `answer` asks to wait in its platform's own way, as declared (`wait:`
    /// in [`service!`](crate::service!)), from now.
    pub fn wait_in(&self, answer: &Answer<'_>) -> Option<std::time::Duration> {
        self.answers
            .wait_asked(answer, std::time::SystemTime::now())
    }

    /// A serializable summary for `lookout services --json`.
    pub fn summary(&self) -> ServiceSummary {
        ServiceSummary {
            name: self.name(),
            title: self.title(),
            category: self.category,
            events: self.events,
            schema: self.schema,
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Registration({})", self.name())
    }
}

/// One service of the catalogue (`GET /v1/services`, `lookout services --json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServiceSummary {
    #[schema(value_type = String)]
    pub name: &'static str,
    #[schema(value_type = String)]
    pub title: &'static str,
    pub category: Category,
    /// The kinds of events it listens to (`Item.created`, `*.created`, `Item.*`).
    #[schema(value_type = Vec<String>)]
    pub events: &'static [&'static str],
    #[serde(flatten)]
    pub schema: Schema,
}

/// A registered service is the platform the transport sends to: its declared pace and
/// its own reading of its answers.
impl Platform for Registration {
    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    fn wait_asked(
        &self,
        answer: &Answer<'_>,
        now: std::time::SystemTime,
    ) -> Option<std::time::Duration> {
        self.answers.wait_asked(answer, now)
    }

    fn verdict(&self, answer: &Answer<'_>) -> Verdict {
        self.verdict_on(answer)
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// What [`service!`](crate::service!) adds to a service's struct: the way back to all
/// it declared (`Slack.registration().verdict_on(…)` in its tests).
pub trait Registered {
    fn registration(&self) -> &'static Registration;
}

/// Every registered service, in no particular order. See [`catalogue`].
#[linkme::distributed_slice]
pub static SERVICES: [Registration];

/// Every registered service, sorted by name.
pub fn catalogue() -> Vec<&'static Registration> {
    let mut all: Vec<&'static Registration> = SERVICES.iter().collect();
    all.sort_by_key(|r| r.name());
    all
}

/// The registered service with this name.
pub fn find(name: &str) -> Option<&'static Registration> {
    SERVICES.iter().find(|r| r.name() == name)
}

/// `Model.action` pattern matching; `*` is one word, a lone `*` is every event.
pub fn pattern_matches(pattern: &str, model: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some((want_model, want_action)) = pattern.split_once('.') else {
        return false;
    };
    let word = |want: &str, got: &str| want == "*" || want.eq_ignore_ascii_case(got);
    word(want_model, model) && word(want_action, action)
}

/// Declares a service struct and registers it with what it is. The doc comments become
/// the service's title (first line) and Markdown install docs (the rest); the file's name
/// becomes the service's name. Then, in this order: its `category`, optionally the
/// `events` it listens to (default `["*.created"]`), its platform's `rate_limit`
/// (default: none), how its platform's `answers` are read ([`Answers`]: the codes that
/// mean "gone" or a refusal; default: the status alone) and where it puts a `wait`
/// ([`Wait`](crate::delivery::Wait): a field of the body or a header, besides
/// `Retry-After`), its platform's size `limits` (required: [`Limits::cut`] for a
/// message the engine may cut to fit, [`Limits::refuse`] for a payload forwarded as it
/// is, [`Limits::none`] with the reason there is none), its option `schema` and an
/// `example` configuration.
///
/// ```ignore
/// lookout::service! {
///     /// Example
///     ///
///     /// 1. How to install it…
///     pub struct Example;
///
///     category: Chat,
///     rate_limit: RateLimit::CHAT_WEBHOOK,
///     answers: Answers::status("Example", &[Means::gone(&["404"], "the hook was deleted")]),
///     wait: Wait::HeaderUntil("X-RateLimit-Reset"),
///     limits: Limits::cut(&[Limit::field("/text", 4_000, Unit::Chars)]),
///     schema: Schema::new(OPTIONS),
///     example: r#"url = "https://example.com/hooks/T000""#,
/// }
/// ```
#[macro_export]
macro_rules! service {
    (
        $(#[doc = $doc:expr])*
        $vis:vis struct $name:ident;

        category: $category:ident,
        $(events: $events:expr,)?
        $(rate_limit: $rate_limit:expr,)?
        $(answers: $answers:expr,)?
        $(wait: $wait:expr,)?
        limits: $limits:expr,
        schema: $schema:expr,
        example: $example:expr $(,)?
    ) => {
        $(#[doc = $doc])*
        $vis struct $name;

        #[$crate::linkme::distributed_slice($crate::SERVICES)]
        #[linkme(crate = $crate::linkme)]
        static REGISTRATION: $crate::Registration = $crate::Registration {
            module: module_path!(),
            docs: concat!($($doc, "\n"),*),
            category: $crate::Category::$category,
            events: $crate::service!(@or [$($events)?] [&["*.created"]]),
            rate_limit: $crate::service!(@or [$(Some($rate_limit))?] [None]),
            answers: $crate::service!(@or [$($answers)?] [$crate::delivery::Answers::BY_STATUS])
                $(.wait($wait))?,
            limits: $limits,
            schema: $schema,
            example: $example,
            service: &$name,
        };

        impl $crate::service::Registered for $name {
            fn registration(&self) -> &'static $crate::Registration {
                &REGISTRATION
            }
        }
    };
    (@or [$($given:tt)+] [$($default:tt)*]) => { $($given)+ };
    (@or [] [$($default:tt)*]) => { $($default)* };
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "Item", "deleted"));
        assert!(pattern_matches("*.created", "Comment", "created"));
        assert!(!pattern_matches("*.created", "Comment", "updated"));
        assert!(pattern_matches("Item.*", "Item", "updated"));
        assert!(pattern_matches("item.CREATED", "Item", "created"));
        assert!(!pattern_matches("Item.*", "Block", "created"));
        assert!(!pattern_matches("Item", "Item", "created"));
        assert!(!pattern_matches("*.*.*", "Item", "created"));
    }
}
