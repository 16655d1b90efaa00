//! A message for a broker (RabbitMQ, MQTT, NATS, Redis…): the ways out that are neither
//! HTTP nor SMTP, under the same policy; [`crate::delivery::publish`] sends it.
//!
//! The engine knows no broker. A broker service builds a [`Publish`]: where the broker
//! is (`host`, `port`, and how reports show it, without credentials), the
//! [`PublishMessage`] (body, delivery id, headers), and a [`Publisher`] of its own that
//! does one try with its broker's client crate ([`BrokerRoute`] reads the `url` option
//! and the routing template, which every broker service has). The engine's
//! [`Transport`](crate::Transport) does the rest, as for HTTP and email: the SSRF guard
//! on the broker's host (resolved once, and the publisher connects to the address that
//! was checked), the rate limit when the service declares one, the request timeout, the
//! deadline, retries with backoff on transient failures (broker down, connection
//! refused, no acknowledgement in time), one try per claim under `lookout serve`, and
//! redaction of every reason (the options' secrets and the credentials the service
//! names with [`Publish::secret`]). `--dry-run` and the snapshots show it through
//! [`Publish::preview`], in the same shape as an HTTP request.
//!
//! A publish is delivered when the broker acknowledged it (a publisher confirm, a
//! `PUBACK`, a JetStream ack, a stream entry id): reports show status `0`, as brokers
//! have no status codes. Consumers deduplicate on the delivery id, which stays the same
//! across the tries of one delivery: a broker that stored a message but whose
//! acknowledgement was lost gets it again, at least once.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::BuildError;
use crate::job::Job;
use crate::options::OptionSpec;
use crate::redact::Redactor;
use crate::request::{Body, Outgoing, RequestPreview};
use crate::text::Dialect;

/// The header (or property, or field) that carries the delivery id to consumers.
pub const DELIVERY_ID: &str = "lookout-delivery-id";
/// The header that says which event it is (`Item.created`).
pub const EVENT: &str = "lookout-event";

/// The `format` option every broker service takes: what the message body is.
pub const FORMAT_OPTION: OptionSpec = OptionSpec::choice(
    "format",
    &["payload", "text", "markdown"],
    "The message body: `payload` (the event's JSON as the product sent it), `text` (the \
     rendered message, plain) or `markdown` (the rendered message, CommonMark).",
)
.public()
.default("payload");

/// What a broker is sent: a body, the delivery id, and headers.
#[derive(Debug, Clone)]
pub struct PublishMessage {
    /// Stable across the tries of one delivery: consumers deduplicate on it.
    pub delivery_id: String,
    /// The event, `Model.action`.
    pub event: String,
    pub body: Body,
}

impl PublishMessage {
    /// The message for `job`'s event in the `format` the [`FORMAT_OPTION`] names: the
    /// payload byte for byte, or the rendered message (an event with no message, an
    /// unknown model, is skipped).
    pub fn for_event(job: &Job<'_>) -> Result<PublishMessage, BuildError> {
        let format = job.options.str(FORMAT_OPTION.name).unwrap_or("payload");
        let body = match format {
            "text" => text_body("text/plain; charset=utf-8", job.message()?.plain()),
            "markdown" => text_body(
                "text/markdown; charset=utf-8",
                job.message()?.markdown(&Dialect::COMMONMARK),
            ),
            _ => Body::RawJson(job.event.forwarded()),
        };
        Ok(PublishMessage {
            delivery_id: job.delivery_id.to_owned(),
            event: job.event.kind(),
            body,
        })
    }

    /// The body's content type (`application/json` for the payload).
    pub fn content_type(&self) -> &str {
        self.body
            .content_type()
            .unwrap_or("application/octet-stream")
    }

    /// The headers every broker carries, in this order: content type, delivery id,
    /// event. Brokers without a content-type property put it with the others.
    pub fn headers(&self) -> [(&'static str, &str); 3] {
        [
            ("content-type", self.content_type()),
            (DELIVERY_ID, &self.delivery_id),
            (EVENT, &self.event),
        ]
    }
}

/// A routing template (a routing key, topic or subject) filled in for `job`'s event:
/// `{product}` is the product's id, `{model}` and `{action}` the event's, lowercased
/// (`sprintly.{model}.{action}` → `sprintly.item.created`). Filled-in words keep only
/// letters, digits, `-` and `_` (anything else becomes `_`), so a payload cannot add
/// separators or wildcards (`.`, `/`, `*`, `#`, `+`, `>`) of its own.
pub fn route(template: &str, job: &Job<'_>) -> String {
    let word = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            .to_lowercase()
    };
    template
        .replace("{product}", &job.event.product.id.to_string())
        .replace("{model}", &word(&job.event.model))
        .replace("{action}", &word(&job.event.action))
}

fn text_body(content_type: &str, text: String) -> Body {
    Body::Text {
        content_type: content_type.to_owned(),
        text,
    }
}

/// Why one try at publishing failed, and whether another could do better.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    /// One line, without credentials (the engine redacts it again all the same).
    pub reason: String,
    /// True for transient failures: the broker down or unreachable, a broken connection,
    /// no acknowledgement; false when the broker refused for good (wrong credentials, no
    /// such exchange or stream).
    pub retry: bool,
}

impl PublishError {
    /// A failure another try may not meet (the broker down, no acknowledgement).
    pub fn transient(reason: impl Into<String>) -> PublishError {
        PublishError {
            reason: reason.into(),
            retry: true,
        }
    }

    /// A refusal another try would only repeat.
    pub fn refused(reason: impl Into<String>) -> PublishError {
        PublishError {
            reason: reason.into(),
            retry: false,
        }
    }
}

/// One try at publishing, as the engine hands it to a [`Publisher`].
#[derive(Debug, Clone, Copy)]
pub struct PublishTry<'a> {
    /// The broker's address, resolved and checked by the engine: connect to it, never
    /// to a name.
    pub address: SocketAddr,
    pub message: &'a PublishMessage,
    /// How long the whole try may take, connecting and the acknowledgement included
    /// (the engine also stops waiting then).
    pub timeout: Duration,
}

/// One try at publishing, implemented by a broker service with its client crate.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Connects to the try's address, publishes its message, and waits for the
    /// broker's acknowledgement, all within its timeout.
    async fn publish_once(&self, to: PublishTry<'_>) -> Result<(), PublishError>;
}

/// One message a broker service wants published.
#[derive(Clone)]
pub struct Publish {
    /// The protocol, as previews show it in place of an HTTP method: `AMQP`, `MQTT`…
    pub protocol: &'static str,
    /// The broker's host as configured (a name or an IP address) and its port.
    pub host: String,
    pub port: u16,
    /// Where it goes, as reports show it: a URL without credentials, naming the place
    /// inside the broker too (`mqtt://broker.example.com:1883/sprintly/items`).
    pub shown: String,
    pub message: PublishMessage,
    /// Values to redact from everything reported about this publish (credentials).
    secrets: Vec<String>,
    pub(crate) publisher: Arc<dyn Publisher>,
}

impl Publish {
    pub fn new(
        protocol: &'static str,
        broker: &BrokerUrl,
        shown: impl Into<String>,
        message: PublishMessage,
        publisher: impl Publisher,
    ) -> Publish {
        let secrets = [&broker.username, &broker.password]
            .into_iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        Publish {
            protocol,
            host: broker.host.clone(),
            port: broker.port,
            shown: shown.into(),
            message,
            secrets,
            publisher: Arc::new(publisher),
        }
    }

    /// Redacts `value` (a token, a password) from everything reported about this publish.
    pub fn secret(mut self, value: &str) -> Self {
        if !value.is_empty() {
            self.secrets.push(value.to_owned());
        }
        self
    }

    /// The publish as `--dry-run` and the snapshots show it, secrets redacted: the
    /// protocol in place of a method, the shown target, the headers and the body.
    pub fn preview(&self, redactor: &Redactor) -> RequestPreview {
        let redactor = self.redactor(redactor);
        RequestPreview {
            method: self.protocol,
            url: redactor.redact(&self.shown),
            headers: self
                .message
                .headers()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), redactor.redact(value)))
                .collect(),
            body: self.message.body.preview(&redactor),
        }
    }

    /// `redactor` plus this publish's own secrets.
    pub(crate) fn redactor<'a>(&self, redactor: &'a Redactor) -> Cow<'a, Redactor> {
        if self.secrets.is_empty() {
            return Cow::Borrowed(redactor);
        }
        let mut more = redactor.clone();
        for secret in &self.secrets {
            more.add(secret);
        }
        Cow::Owned(more)
    }

    /// The broker as a URL (`amqp://host:5672`): what rate limits key on.
    pub(crate) fn broker_url(&self) -> Result<url::Url, String> {
        let scheme = self.protocol.to_ascii_lowercase();
        url::Url::parse(&format!("{scheme}://{}:{}", self.host, self.port))
            .map_err(|e| format!("not a broker address: {e}"))
    }
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.redactor(&Redactor::new()).redact(&self.shown);
        write!(f, "Publish({} {shown})", self.protocol)
    }
}

/// A broker's URL option, taken apart: `amqp://user:pass@host:5672/vhost`.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Percent-decoded; empty when none.
    pub username: String,
    /// Percent-decoded; empty when none.
    pub password: String,
    /// The path without its leading `/`, percent-decoded (a RabbitMQ vhost, a Redis
    /// database number).
    pub path: String,
}

impl BrokerUrl {
    /// Parses the URL option `option` (errors name the option, never its value: it holds
    /// credentials). `schemes` are the ones the service takes; the first is shown in the
    /// error. A URL without a port gets `default_port`.
    pub fn parse(
        option: &str,
        text: &str,
        schemes: &[&str],
        default_port: u16,
    ) -> Result<BrokerUrl, BuildError> {
        let invalid = |why: String| BuildError::Invalid(format!("{option}: {why}"));
        let url = url::Url::parse(text.trim()).map_err(|e| invalid(e.to_string()))?;
        if !schemes.contains(&url.scheme()) {
            let wanted: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            return Err(invalid(format!("want a {} URL", wanted.join(" or "))));
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(invalid("no host".to_owned())),
        };
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid("not UTF-8 once decoded".to_owned()))
        };
        Ok(BrokerUrl {
            scheme: url.scheme().to_owned(),
            host,
            port: url.port().unwrap_or(default_port),
            username: decode(url.username())?,
            password: decode(url.password().unwrap_or_default())?,
            path: decode(url.path().trim_start_matches('/'))?,
        })
    }

    /// `scheme://host:port`, without credentials: the start of a shown target.
    pub fn origin(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({}/{})", self.origin(), self.path)
    }
}

/// Where a broker service publishes: the broker its `url` option names, and the place
/// inside it (a routing key, a topic, a subject, a stream key) that its routing template
/// fills in for the event. A service's [`Publisher`] keeps it for the login and the
/// name, next to what only that broker has (a vhost and an exchange, a database).
#[derive(Clone, Debug)]
pub struct BrokerRoute {
    /// The `url` option, taken apart (credentials included).
    pub broker: BrokerUrl,
    /// The routing template filled in for the event ([`route`]).
    pub name: String,
}

impl BrokerRoute {
    /// The broker in the `url` option (`schemes` and `default_port` as for
    /// [`BrokerUrl::parse`]) and the routing template in the option `template` filled in
    /// for `job`'s event.
    pub fn from_options(
        job: &Job<'_>,
        schemes: &[&str],
        default_port: u16,
        template: &str,
    ) -> Result<BrokerRoute, BuildError> {
        let url = job.options.str("url").unwrap_or_default();
        Ok(BrokerRoute {
            broker: BrokerUrl::parse("url", url, schemes, default_port)?,
            name: route(job.options.str(template).unwrap_or_default(), job),
        })
    }

    /// `scheme://host:port/name`, without credentials: the shown target of a broker
    /// where the name alone says where the message goes.
    pub fn shown(&self) -> String {
        format!("{}/{}", self.broker.origin(), self.name)
    }
}

/// What a broker service declares about its broker, for [`Broker::build`]: the whole
/// `build` of a service that publishes the event to a route of a broker named by its
/// `url` option.
#[derive(Debug, Clone, Copy)]
pub struct Broker {
    /// The protocol, as previews show it in place of an HTTP method (`MQTT`).
    pub protocol: &'static str,
    /// The URL schemes the `url` option may have (`mqtt`).
    pub schemes: &'static [&'static str],
    /// The broker's port when the URL names none.
    pub port: u16,
    /// The option holding the routing template (`topic`, `subject`, `routing`, `stream`).
    pub route: &'static str,
}

impl Broker {
    /// The `url` option of a broker service: a secret (it holds the credentials) that
    /// names where messages go.
    pub const fn url_option(description: &'static str) -> OptionSpec {
        OptionSpec::string("url", description)
            .secret()
            .destination()
    }

    /// The routing template option (see [`route`]), with its default.
    pub const fn route_option(
        &self,
        description: &'static str,
        default: &'static str,
    ) -> OptionSpec {
        OptionSpec::string(self.route, description)
            .public()
            .default(default)
    }

    /// One publish of `job`'s event (in the `format` the [`FORMAT_OPTION`] names) to the
    /// broker in the `url` option: `publisher` gets the route filled in for the event
    /// and gives the service's own [`Publisher`] and the target as reports show it
    /// (without credentials).
    pub fn build<P: Publisher>(
        &self,
        job: &Job<'_>,
        publisher: impl FnOnce(BrokerRoute) -> Result<(String, P), BuildError>,
    ) -> Result<Vec<Outgoing>, BuildError> {
        let route = BrokerRoute::from_options(job, self.schemes, self.port, self.route)?;
        let broker = route.broker.clone();
        let (shown, publisher) = publisher(route)?;
        let message = PublishMessage::for_event(job)?;
        let publish = Publish::new(self.protocol, &broker, shown, message, publisher);
        Ok(vec![publish.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait]
    impl Publisher for Nothing {
        async fn publish_once(&self, _: PublishTry<'_>) -> Result<(), PublishError> {
            Ok(())
        }
    }

    fn message() -> PublishMessage {
        PublishMessage {
            delivery_id: "msg_1".into(),
            event: "Item.created".into(),
            body: Body::RawJson(Arc::from("{\"a\": 1}")),
        }
    }

    #[test]
    fn urls_come_apart_without_showing_credentials() {
        let url = "amqp://bot:p%40ss@rabbit.example.com/%2fevents";
        let broker = BrokerUrl::parse("url", url, &["amqp"], 5672).unwrap();
        assert_eq!(broker.port, 5672);
        assert_eq!(broker.password, "p@ss");
        assert_eq!(broker.path, "/events");
        assert_eq!(broker.origin(), "amqp://rabbit.example.com:5672");
        assert!(!format!("{broker:?}").contains("p@ss"));

        let err = BrokerUrl::parse("url", "http://bot:hunter2@h/", &["amqp"], 1).unwrap_err();
        assert_eq!(err.to_string(), "url: want a amqp:// URL");
        let err = BrokerUrl::parse("url", "hunter2", &["amqp"], 1).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn previews_show_headers_and_body_but_no_credentials() {
        let broker = BrokerUrl::parse("url", "amqp://bot:hunter2@h:1/v", &["amqp"], 1).unwrap();
        let publish = Publish::new(
            "AMQP",
            &broker,
            "amqp://bot:hunter2@h:1/v",
            message(),
            Nothing,
        );
        let preview = publish.preview(&Redactor::new());
        assert_eq!(preview.method, "AMQP");
        assert_eq!(preview.url, "amqp://[redacted]:[redacted]@h:1/v");
        assert_eq!(
            preview.headers[1],
            (DELIVERY_ID.to_owned(), "msg_1".to_owned())
        );
        assert_eq!(preview.body["a"], 1);
        assert!(!format!("{publish:?}").contains("hunter2"));
    }
}
