//! The `nats` service (NATS JetStream). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs nats` shows them.

use std::time::Duration;

use async_nats::jetstream::context::{PublishError as JsError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage as JsMessage;
use async_nats::{ConnectErrorKind, ConnectOptions};
use lookout::prelude::*;
use lookout::request::publish::{
    Broker, BrokerRoute, DELIVERY_ID, EVENT, FORMAT_OPTION, PublishError, PublishTry, Publisher,
};

lookout::service! {
    /// NATS JetStream
    ///
    /// Publishes each event to a NATS subject that a JetStream stream captures, and
    /// waits for the stream's acknowledgement: a delivery succeeds once the message is
    /// stored. `Nats-Msg-Id` holds the delivery id, which stays the same when Lookout
    /// tries again, so JetStream drops a duplicate within the stream's duplicate window
    /// (two minutes by default); consumers see it in `lookout-delivery-id` too, with the
    /// event in `lookout-event` (`Item.created`). The body is the payload as the product
    /// sent it, or the rendered message with `format`.
    ///
    /// 1. Create a stream that captures the subjects, e.g. with the `nats` CLI:
    ///    `nats stream add SPRINTLY --subjects 'sprintly.>' --storage file --defaults`.
    /// 2. Give Lookout a user that may publish to the subjects and hear the stream's
    ///    acknowledgement, in the server's `authorization` block:
    ///    `permissions: { publish: "sprintly.>", subscribe: "_INBOX.>" }`.
    /// 3. Set `url` to `nats://lookout:PASSWORD@nats.example.com:4222` (user and
    ///    password), or `nats://TOKEN@nats.example.com:4222` for token authentication.
    ///    Lookout treats the whole URL as a secret.
    /// 4. Set `subject`, a template where `{product}` is the product's id and `{model}`
    ///    and `{action}` the event's, lowercased: `sprintly.{model}.{action}` gives
    ///    `sprintly.item.created`.
    ///
    /// Lookout connects to the one server in `url` only: it ignores the other cluster
    /// members a server advertises (they could point anywhere, past the address check).
    /// Each delivery opens its own connection. Plain TCP only: `tls://` is not supported
    /// yet.
    pub struct Nats;

    category: Broker,
    events: &["*"],
    // A NATS server's default `max_payload`: 1 MB.
    limits: Limits::refuse(&[
        Limit::body(1_048_576, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "nats://lookout:nats-password-for-docs@nats.example.com:4222"
subject = "sprintly.{model}.{action}""#,
}

const OPTIONS: &[OptionSpec] = &[
    Broker::url_option("The server, `nats://user:password@host:4222` or `nats://token@host:4222`."),
    NATS.route_option(
        "The subject: a template with `{product}`, `{model}` and `{action}`.",
        "sprintly.{model}.{action}",
    ),
    FORMAT_OPTION,
];

const NATS: Broker = Broker {
    protocol: "NATS",
    schemes: &["nats"],
    port: 4222,
    route: "subject",
};

impl Service for Nats {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        NATS.build(job, |subject| Ok((subject.shown(), Subject(subject))))
    }
}

/// One subject to publish to (the route's name), with the credentials to log in.
struct Subject(BrokerRoute);

#[lookout::async_trait]
impl Publisher for Subject {
    async fn publish_once(&self, to: PublishTry<'_>) -> Result<(), PublishError> {
        let client = self
            .options(to.timeout)
            .connect(format!("nats://{}", to.address))
            .await
            .map_err(|e| connect_failure(&e))?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let published = JsMessage::build()
            .payload(to.message.body.to_wire())
            .message_id(&to.message.delivery_id)
            .header("content-type", to.message.content_type())
            .header(DELIVERY_ID, to.message.delivery_id.as_str())
            .header(EVENT, to.message.event.as_str());
        let acked = match jetstream.send_publish(self.0.name.clone(), published).await {
            Ok(ack) => ack.await.map(|_| ()),
            Err(err) => Err(err),
        };
        // The acknowledgement is in (or not): the connection has nothing left to do.
        let _ = client.drain().await;
        acked.map_err(|e| publish_failure(&e))
    }
}

impl Subject {
    /// One server, as checked: no reconnecting elsewhere, no advertised servers.
    fn options(&self, timeout: Duration) -> ConnectOptions {
        let broker = &self.0.broker;
        let options = match (broker.username.is_empty(), broker.password.is_empty()) {
            (true, _) => ConnectOptions::new(),
            (false, true) => ConnectOptions::with_token(broker.username.clone()),
            (false, false) => ConnectOptions::with_user_and_password(
                broker.username.clone(),
                broker.password.clone(),
            ),
        };
        options
            .ignore_discovered_servers()
            .retain_servers_order()
            .max_reconnects(Some(1))
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
    }
}

/// A failed connection: refused credentials are final; the rest may pass later.
fn connect_failure(err: &async_nats::ConnectError) -> PublishError {
    let reason = format!("cannot connect: {err}");
    match err.kind() {
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            PublishError::refused(reason)
        }
        _ => PublishError::transient(reason),
    }
}

/// A publish without an acknowledgement. No stream for the subject is worth another
/// try (the stream may be created meanwhile, and nothing was stored); so are a timeout
/// and a broken connection. A message too large for the server never fits.
fn publish_failure(err: &JsError) -> PublishError {
    let reason = format!("publishing failed: {err}");
    match err.kind() {
        PublishErrorKind::MaxPayloadExceeded => PublishError::refused(reason),
        _ => PublishError::transient(reason),
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::fixture_json;

    use super::*;

    #[test]
    fn the_subject_is_filled_in_and_the_token_hidden() {
        let options = json!({ "url": "nats://s3cr3t-token@nats.example.com" });
        let instance = lookout::Instance::new("n", "nats", options.as_object().unwrap()).unwrap();
        let event = Event::parse(&fixture_json("deploy")).unwrap();
        let preview = lookout::dispatch::preview_one(&event, &instance);
        assert_eq!(
            preview.requests[0].url,
            "nats://nats.example.com:4222/sprintly.deploy.created"
        );
        assert!(!format!("{preview:?}").contains("s3cr3t-token"));
    }
}
