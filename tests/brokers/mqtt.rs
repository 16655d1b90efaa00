//! MQTT: the `mqtt` service against a real Mosquitto, heard by a rumqttc subscriber.

use std::time::Duration;

use lookout::Outcome;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::servers::{self, USER};
use super::{CANARY, TestFn, delivered, failed_retryable, one_try, payload, send};

pub const TESTS: &[(&str, TestFn)] = &[
    ("mqtt_publishes_at_qos_1_with_user_properties", || {
        Box::pin(publishes_at_qos_1_with_user_properties())
    }),
    ("mqtt_a_broker_killed_mid_run_loses_nothing", || {
        Box::pin(a_broker_killed_mid_run_loses_nothing())
    }),
];

fn options() -> Value {
    let port = servers::mosquitto();
    json!({
        "url": format!("mqtt://{USER}:{CANARY}@127.0.0.1:{port}"),
        "topic": "sprintly/{product}/{model}/{action}",
    })
}

/// A subscriber to `sprintly/#` at QoS 1, subscribed when this returns; what it hears
/// comes out of the channel.
async fn subscriber() -> (AsyncClient, mpsc::UnboundedReceiver<Publish>) {
    let port = servers::mosquitto();
    let mut options = MqttOptions::new("lookout-test-subscriber", "127.0.0.1", port);
    options.set_credentials(USER, CANARY);
    let (client, mut events) = AsyncClient::new(options, 10);
    client
        .subscribe("sprintly/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (heard, hear) = mpsc::unbounded_channel();
    let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed = Some(subscribed);
        while let Ok(event) = events.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    subscribed.take().map(|s| s.send(()));
                }
                Event::Incoming(Packet::Publish(publish)) => {
                    let _ = heard.send(publish);
                }
                _ => {}
            }
        }
    });
    is_subscribed.await.unwrap();
    (client, hear)
}

async fn next(hear: &mut mpsc::UnboundedReceiver<Publish>) -> Publish {
    tokio::time::timeout(Duration::from_secs(5), hear.recv())
        .await
        .expect("a message within 5 s")
        .unwrap()
}

fn user_property(publish: &Publish, name: &str) -> String {
    let properties = publish.properties.as_ref().unwrap();
    let found = properties
        .user_properties
        .iter()
        .find(|(key, _)| key == name);
    found.unwrap().1.clone()
}

async fn publishes_at_qos_1_with_user_properties() {
    let (_client, mut hear) = subscriber().await;
    let report = send("mqtt", options(), "item-markup").await;
    let row = delivered(&report);
    let port = servers::mosquitto();
    assert_eq!(
        row.target.as_deref(),
        Some(format!("mqtt://127.0.0.1:{port}/sprintly/1111/item/created").as_str())
    );
    let message = next(&mut hear).await;
    assert_eq!(message.topic, "sprintly/1111/item/created");
    assert_eq!(message.payload, payload("item-markup").as_bytes());
    assert_eq!(message.qos, QoS::AtLeastOnce);
    let id = user_property(&message, "lookout-delivery-id");
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(user_property(&message, "lookout-event"), "Item.created");
    let properties = message.properties.as_ref().unwrap();
    assert_eq!(properties.content_type.as_deref(), Some("application/json"));
}

async fn a_broker_killed_mid_run_loses_nothing() {
    servers::kill("mosquitto");
    let down = one_try("mqtt", options(), "comment", "msg_mqtt_down").await;
    failed_retryable(&down);

    servers::restart("mosquitto");
    let (_client, mut hear) = subscriber().await;
    let again = one_try("mqtt", options(), "comment", "msg_mqtt_down").await;
    assert_eq!(again.outcome, Outcome::Delivered { status: 0 }, "{again:?}");
    let message = next(&mut hear).await;
    assert_eq!(
        user_property(&message, "lookout-delivery-id"),
        "msg_mqtt_down"
    );
    let more = tokio::time::timeout(Duration::from_millis(300), hear.recv()).await;
    assert!(more.is_err(), "one copy only: {more:?}");
}
