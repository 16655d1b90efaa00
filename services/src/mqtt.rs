//! The `mqtt` service (MQTT). Its Markdown install docs are the doc comments on the
//! struct registered below; `lookout docs mqtt` shows them.

use std::net::SocketAddr;
use std::time::Duration;

use lookout::prelude::*;
use lookout::request::publish::{
    Broker, BrokerRoute, DELIVERY_ID, EVENT, FORMAT_OPTION, PublishError, PublishMessage,
    PublishTry, Publisher,
};
use rumqttc::Outgoing as Sent;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason, PublishProperties};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};

lookout::service! {
    /// MQTT
    ///
    /// Publishes each event to an MQTT broker (Mosquitto, EMQX, HiveMQ, VerneMQ…) with
    /// MQTT 5 at QoS 1: a delivery succeeds once the broker acknowledges the message
    /// (`PUBACK`). The MQTT 5 user properties `lookout-delivery-id` (the same when
    /// Lookout tries again, so subscribers can drop duplicates) and `lookout-event`
    /// (`Item.created`) go with it, and its content type. The body is the payload as the
    /// product sent it, or the rendered message with `format`.
    ///
    /// 1. Create a user for Lookout on the broker, e.g. for Mosquitto
    ///    `mosquitto_passwd /etc/mosquitto/passwd lookout`, allowed to write the topics
    ///    in its ACL file: `user lookout` then `topic write sprintly/#`.
    /// 2. Set `url` to `mqtt://lookout:PASSWORD@mqtt.example.com:1883` (user and
    ///    password percent-encoded; leave them out for a broker that takes anonymous
    ///    clients). Lookout treats the whole URL as a secret.
    /// 3. Set `topic`, a template where `{product}` is the product's id and `{model}`
    ///    and `{action}` the event's, lowercased: `sprintly/{product}/{model}/{action}`
    ///    gives `sprintly/1/item/created`. Subscribers use wildcards
    ///    (`sprintly/+/item/#`).
    /// 4. Subscribe at QoS 1 with a persistent session (clean start off, a fixed client
    ///    id) if a subscriber must not miss events published while it is offline: the
    ///    broker keeps them for it.
    ///
    /// The broker must speak MQTT 5 (Mosquitto 1.6 and later do). Each delivery opens
    /// its own connection, with client id `lookout-` and the delivery id. Plain TCP only:
    /// `mqtts://` (TLS) is not supported yet.
    pub struct Mqtt;

    category: Broker,
    events: &["*"],
    // MQTT's largest packet (its 4-byte remaining length): 256 MB.
    limits: Limits::refuse(&[
        Limit::body(268_435_455, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "mqtt://lookout:mqtt-password-for-docs@mqtt.example.com:1883"
topic = "sprintly/{product}/{model}/{action}""#,
}

const OPTIONS: &[OptionSpec] = &[
    Broker::url_option(
        "The broker, `mqtt://user:password@host:1883` (no user for anonymous access).",
    ),
    MQTT.route_option(
        "The topic: a template with `{product}`, `{model}` and `{action}`.",
        "sprintly/{product}/{model}/{action}",
    ),
    FORMAT_OPTION,
];

const MQTT: Broker = Broker {
    protocol: "MQTT",
    schemes: &["mqtt"],
    port: 1883,
    route: "topic",
};

impl Service for Mqtt {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        MQTT.build(job, |topic| Ok((topic.shown(), Topic(topic))))
    }
}

/// One topic to publish to (the route's name), with the credentials to log in.
struct Topic(BrokerRoute);

#[lookout::async_trait]
impl Publisher for Topic {
    async fn publish_once(&self, to: PublishTry<'_>) -> Result<(), PublishError> {
        let (client, mut events) =
            AsyncClient::new(self.options(to.address, to.message, to.timeout), 4);
        client
            .publish_with_properties(
                self.0.name.as_str(),
                QoS::AtLeastOnce,
                false,
                to.message.body.to_wire(),
                properties(to.message),
            )
            .await
            .map_err(|e| PublishError::refused(format!("cannot publish: {e}")))?;
        // The client only queues the publish: the event loop connects, sends it, and
        // reads the broker's PUBACK for its packet id.
        let mut packet_id = None;
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Sent::Publish(id))) => packet_id = Some(id),
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == packet_id => {
                    let _ = client.try_disconnect();
                    return acknowledged(&ack.reason);
                }
                Ok(_) => {}
                Err(err) => return Err(connection_failure(&err)),
            }
        }
    }
}

impl Topic {
    /// The broker at the checked address (never its name: no second lookup).
    fn options(
        &self,
        address: SocketAddr,
        message: &PublishMessage,
        timeout: Duration,
    ) -> MqttOptions {
        let client_id = format!("lookout-{}", message.delivery_id);
        let mut options = MqttOptions::new(client_id, address.ip().to_string(), address.port());
        options
            .set_clean_start(true)
            .set_connection_timeout(timeout.as_secs().max(1));
        let broker = &self.0.broker;
        if !broker.username.is_empty() {
            options.set_credentials(broker.username.as_str(), broker.password.as_str());
        }
        options
    }
}

/// The content type and Lookout's user properties.
fn properties(message: &PublishMessage) -> PublishProperties {
    PublishProperties {
        content_type: Some(message.content_type().to_owned()),
        user_properties: vec![
            (DELIVERY_ID.to_owned(), message.delivery_id.clone()),
            (EVENT.to_owned(), message.event.clone()),
        ],
        ..Default::default()
    }
}

/// What a `PUBACK` says. "No matching subscribers" is still accepted: the broker took
/// the message, and nobody was listening.
fn acknowledged(reason: &PubAckReason) -> Result<(), PublishError> {
    match reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
        PubAckReason::QuotaExceeded | PubAckReason::UnspecifiedError => Err(
            PublishError::transient(format!("the broker did not take it: {reason:?}")),
        ),
        refused => Err(PublishError::refused(format!(
            "the broker refused it: {refused:?}"
        ))),
    }
}

/// A connection that failed or broke. A refused login or topic is final; a broker that
/// is unavailable, busy or unreachable may take it later.
fn connection_failure(err: &ConnectionError) -> PublishError {
    let reason = format!("connection failed: {err}");
    match err {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword
            | ConnectReturnCode::NotAuthorized
            | ConnectReturnCode::Banned
            | ConnectReturnCode::BadAuthenticationMethod
            | ConnectReturnCode::UnsupportedProtocolVersion,
        ) => PublishError::refused(reason),
        _ => PublishError::transient(reason),
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::fixture_json;

    use super::*;

    #[test]
    fn payload_words_cannot_add_topic_levels_or_wildcards() {
        let options = json!({
            "url": "mqtt://lookout:s3cret-pass@mqtt.example.com",
            "topic": "sprintly/{model}/{action}",
        });
        let instance = lookout::Instance::new("m", "mqtt", options.as_object().unwrap()).unwrap();
        let mut payload: Value = serde_json::from_str(&fixture_json("item")).unwrap();
        payload["action"] = json!("created/#/+");
        let event = lookout::Event::parse(&payload.to_string()).unwrap();
        let preview = lookout::dispatch::preview_one(&event, &instance);
        assert_eq!(
            preview.requests[0].url,
            "mqtt://mqtt.example.com:1883/sprintly/item/created____"
        );
    }

    #[test]
    fn no_subscriber_is_still_a_delivery() {
        assert!(acknowledged(&PubAckReason::NoMatchingSubscribers).is_ok());
        assert!(
            !acknowledged(&PubAckReason::NotAuthorized)
                .unwrap_err()
                .retry
        );
        assert!(
            acknowledged(&PubAckReason::QuotaExceeded)
                .unwrap_err()
                .retry
        );
    }
}
