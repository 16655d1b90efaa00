//! The `rabbitmq` service (RabbitMQ). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs rabbitmq` shows them.

use std::net::SocketAddr;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ErrorKind};
use lookout::prelude::*;
use lookout::request::publish::{
    Broker, BrokerRoute, DELIVERY_ID, EVENT, FORMAT_OPTION, PublishError, PublishMessage,
    PublishTry, Publisher,
};

lookout::service! {
    /// RabbitMQ
    ///
    /// Publishes each event to a RabbitMQ exchange over AMQP 0-9-1, with publisher
    /// confirms: a delivery succeeds only once the broker has taken responsibility for
    /// the message. The body is the payload as the product sent it (or the rendered
    /// message, with `format`); the message id and the `lookout-delivery-id` header hold
    /// the delivery id, which stays the same when Lookout tries again, so consumers can
    /// drop duplicates. `lookout-event` says which event it is (`Item.created`).
    ///
    /// 1. Create a user for Lookout that may write to the exchange, e.g.
    ///    `rabbitmqctl add_user lookout 'a long password'` then
    ///    `rabbitmqctl set_permissions -p / lookout '^$' '^sprintly$' '^$'`
    ///    (configure nothing, write to `sprintly`, read nothing).
    /// 2. Declare the exchange Lookout publishes to, e.g. a topic exchange:
    ///    `rabbitmqadmin declare exchange name=sprintly type=topic durable=true`, and
    ///    bind your consumers' queues to it (`sprintly.item.*`, `sprintly.#`…). Lookout
    ///    declares nothing itself.
    /// 3. Set `url` to `amqp://lookout:PASSWORD@rabbit.example.com:5672/%2f`: the user,
    ///    its password (percent-encoded), the host, the port and the vhost (`%2f` is the
    ///    default vhost `/`). Lookout treats the whole URL as a secret.
    /// 4. Set `exchange` (`sprintly`) and `routing`, the routing key: a template where
    ///    `{product}` is the product's id and `{model}` and `{action}` the event's,
    ///    lowercased: `sprintly.{model}.{action}` gives `sprintly.item.created`. With the default
    ///    exchange (`exchange = ""`) the routing key is a queue's name.
    ///
    /// Messages are persistent (delivery mode 2) and mandatory: a message that no queue
    /// takes is returned by the broker and the delivery fails, to be tried again (nothing
    /// is silently dropped). Each delivery opens its own connection and closes it after
    /// the confirm. Plain AMQP only: `amqps://` (TLS) is not supported yet.
    pub struct Rabbitmq;

    category: Broker,
    events: &["*"],
    // RabbitMQ's default `max_message_size` since 4.0: 16 MiB.
    limits: Limits::refuse(&[
        Limit::body(16 * 1_048_576, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "amqp://lookout:rabbit-password-for-docs@rabbit.example.com:5672/%2f"
exchange = "sprintly"
routing = "sprintly.{model}.{action}""#,
}

const OPTIONS: &[OptionSpec] = &[
    Broker::url_option("The broker, `amqp://user:password@host:5672/vhost` (vhost `%2f` is `/`)."),
    OptionSpec::string(
        "exchange",
        "The exchange to publish to; empty is the default exchange (routing key = queue).",
    )
    .public()
    .default(""),
    AMQP.route_option(
        "The routing key: a template with `{product}`, `{model}` and `{action}`.",
        "sprintly.{model}.{action}",
    ),
    FORMAT_OPTION,
];

const AMQP: Broker = Broker {
    protocol: "AMQP",
    schemes: &["amqp"],
    port: 5672,
    route: "routing",
};

impl Service for Rabbitmq {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        AMQP.build(job, |routing| Ok(amqp(job, routing)))
    }
}

/// The publisher for `routing`: its vhost from the URL's path, and the exchange; and
/// the target as reports show it.
fn amqp(job: &Job<'_>, routing: BrokerRoute) -> (String, Amqp) {
    let vhost = match routing.broker.path.as_str() {
        "" => "/".to_owned(),
        path => path.to_owned(),
    };
    let exchange = job.options.str("exchange").unwrap_or_default().to_owned();
    let shown = format!(
        "{}/{}?exchange={exchange}&routing_key={}",
        routing.broker.origin(),
        url_path(&vhost),
        routing.name
    );
    let amqp = Amqp {
        routing,
        vhost,
        exchange,
    };
    (shown, amqp)
}

/// The vhost as a URL path segment (`/` is `%2f`).
fn url_path(vhost: &str) -> String {
    vhost.replace('%', "%25").replace('/', "%2f")
}

/// One publish to one exchange, with the routing key (the route's name) and the
/// credentials to log in.
struct Amqp {
    routing: BrokerRoute,
    vhost: String,
    exchange: String,
}

#[lookout::async_trait]
impl Publisher for Amqp {
    async fn publish_once(&self, to: PublishTry<'_>) -> Result<(), PublishError> {
        let connection = Connection::connect_uri(
            self.uri(to.address, to.timeout),
            ConnectionProperties::default(),
        )
        .await
        .map_err(|e| failure("cannot connect", &e))?;
        let published = self.publish_on(&connection, to.message).await;
        // Closing politely is a courtesy: the message is confirmed (or not) already.
        let _ = connection.close(200, "bye".into()).await;
        published
    }
}

impl Amqp {
    /// The broker at the checked address (never its name: no second lookup).
    fn uri(&self, address: SocketAddr, timeout: Duration) -> AMQPUri {
        let broker = &self.routing.broker;
        let userinfo = if broker.username.is_empty() {
            AMQPUserInfo::default()
        } else {
            AMQPUserInfo {
                username: broker.username.clone(),
                password: broker.password.clone(),
            }
        };
        AMQPUri {
            scheme: AMQPScheme::AMQP,
            authority: AMQPAuthority {
                userinfo,
                host: address.ip().to_string(),
                port: address.port(),
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                connection_timeout: Some(timeout.as_millis() as u64),
                ..Default::default()
            },
        }
    }

    /// Publishes on a fresh channel in confirm mode and waits for the broker's answer.
    async fn publish_on(
        &self,
        connection: &Connection,
        message: &PublishMessage,
    ) -> Result<(), PublishError> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| failure("cannot open a channel", &e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| failure("cannot turn on publisher confirms", &e))?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirmation = channel
            .basic_publish(
                self.exchange.as_str().into(),
                self.routing.name.as_str().into(),
                options,
                &message.body.to_wire(),
                properties(message),
            )
            .await
            .map_err(|e| failure("publishing failed", &e))?
            .await
            .map_err(|e| failure("no confirm", &e))?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(PublishError::transient(format!(
                "no queue takes routing key `{}` on exchange `{}`: the broker returned it",
                self.routing.name, self.exchange
            ))),
            Confirmation::Nack(_) => Err(PublishError::transient("the broker refused it (nack)")),
            Confirmation::NotRequested => Err(PublishError::transient("no confirm was given")),
        }
    }
}

/// Content type, message id (the delivery id), persistence, and Lookout's headers.
fn properties(message: &PublishMessage) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in [(DELIVERY_ID, &message.delivery_id), (EVENT, &message.event)] {
        headers.insert(name.into(), AMQPValue::LongString(value.as_str().into()));
    }
    BasicProperties::default()
        .with_content_type(message.content_type().into())
        .with_message_id(message.delivery_id.as_str().into())
        .with_app_id("lookout".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// A lapin error as a failure: the broker's refusals (wrong login, no such exchange or
/// vhost) are final; a broken or refused connection and timeouts are worth another try.
fn failure(what: &str, err: &lapin::Error) -> PublishError {
    let reason = format!("{what}: {err}");
    match err.kind() {
        ErrorKind::ProtocolError(amqp) if !is_transient(amqp.get_id()) => {
            PublishError::refused(reason)
        }
        _ => PublishError::transient(reason),
    }
}

/// AMQP reply codes that a later try may not meet: the connection forced closed (the
/// broker shutting down) and a resource limit (memory or disk alarm).
fn is_transient(reply_code: u16) -> bool {
    matches!(reply_code, 320 | 506)
}

#[cfg(test)]
mod tests {
    use lookout_testkit::fixture_json;

    use super::*;

    #[test]
    fn routing_keys_name_the_event_and_vhosts_stay_one_segment() {
        let options = json!({
            "url": "amqp://lookout:s3cret-pass@rabbit.example.com/%2fteam",
            "routing": "sprintly.{product}.{model}.{action}",
        });
        let instance =
            lookout::Instance::new("r", "rabbitmq", options.as_object().unwrap()).unwrap();
        let event = Event::parse(&fixture_json("comment")).unwrap();
        let preview = lookout::dispatch::preview_one(&event, &instance);
        assert_eq!(
            preview.requests[0].url,
            "amqp://rabbit.example.com:5672/%2fteam?exchange=&routing_key=sprintly.1111.comment.created"
        );
    }

    #[test]
    fn refusals_are_final_and_alarms_are_not() {
        assert!(is_transient(320));
        assert!(is_transient(506));
        assert!(!is_transient(403));
        assert!(!is_transient(404));
    }
}
