//! RabbitMQ: the `rabbitmq` service against a real RabbitMQ, consumed with lapin.

use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use lookout::Outcome;
use serde_json::{Value, json};

use super::servers::{self, USER};
use super::{CANARY, TestFn, delivered, failed_retryable, one_try, payload, send};

pub const TESTS: &[(&str, TestFn)] = &[
    (
        "rabbitmq_publishes_confirmed_with_headers_and_routing",
        || Box::pin(publishes_confirmed_with_headers_and_routing()),
    ),
    ("rabbitmq_renders_the_message_when_asked", || {
        Box::pin(renders_the_message_when_asked())
    }),
    (
        "rabbitmq_unroutable_messages_fail_to_be_tried_again",
        || Box::pin(unroutable_messages_fail_to_be_tried_again()),
    ),
    ("rabbitmq_a_wrong_password_is_final_and_hidden", || {
        Box::pin(a_wrong_password_is_final_and_hidden())
    }),
    ("rabbitmq_a_broker_killed_mid_run_loses_nothing", || {
        Box::pin(a_broker_killed_mid_run_loses_nothing())
    }),
];

const EXCHANGE: &str = "sprintly";
const QUEUE: &str = "lookout-test";

fn options(password: &str) -> Value {
    let port = servers::rabbitmq();
    json!({
        "url": format!("amqp://{USER}:{password}@127.0.0.1:{port}/%2f"),
        "exchange": EXCHANGE,
        "routing": "sprintly.{model}.{action}",
    })
}

/// A consumer's channel, with a durable topic exchange and an empty durable queue bound
/// to `sprintly.#` on it.
async fn consumer() -> (Connection, Channel) {
    let port = servers::rabbitmq();
    let url = format!("amqp://{USER}:{CANARY}@127.0.0.1:{port}/%2f");
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(QUEUE.into(), durable, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            QUEUE.into(),
            EXCHANGE.into(),
            "sprintly.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_purge(QUEUE.into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    (connection, channel)
}

/// Every message in the queue, acknowledged.
async fn drain(channel: &Channel) -> Vec<lapin::message::Delivery> {
    let mut got = Vec::new();
    while let Some(message) = channel
        .basic_get(QUEUE.into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        got.push(message.delivery);
    }
    got
}

fn header(message: &lapin::message::Delivery, name: &str) -> String {
    let headers = message.properties.headers().clone().unwrap_or_default();
    match headers.inner().get(name) {
        Some(AMQPValue::LongString(value)) => value.to_string(),
        other => panic!("header {name}: {other:?}"),
    }
}

async fn publishes_confirmed_with_headers_and_routing() {
    let (_connection, channel) = consumer().await;
    let report = send("rabbitmq", options(CANARY), "item-markup").await;
    let row = delivered(&report);
    let port = servers::rabbitmq();
    assert_eq!(
        row.target.as_deref(),
        Some(
            format!(
                "amqp://127.0.0.1:{port}/%2f?exchange=sprintly&routing_key=sprintly.item.created"
            )
            .as_str()
        )
    );

    let got = drain(&channel).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let message = &got[0];
    assert_eq!(
        message.data,
        payload("item-markup").as_bytes(),
        "the payload as sent"
    );
    assert_eq!(message.exchange.as_str(), EXCHANGE);
    assert_eq!(message.routing_key.as_str(), "sprintly.item.created");
    let properties = &message.properties;
    let id = header(message, "lookout-delivery-id");
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(properties.message_id().as_ref().unwrap().as_str(), id);
    assert_eq!(
        properties.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(header(message, "lookout-event"), "Item.created");
}

async fn renders_the_message_when_asked() {
    let (_connection, channel) = consumer().await;
    let mut options = options(CANARY);
    options["format"] = json!("text");
    delivered(&send("rabbitmq", options, "comment").await);
    let got = drain(&channel).await;
    assert_eq!(got.len(), 1);
    let text = String::from_utf8(got[0].data.clone()).unwrap();
    assert!(text.contains("commented on"), "{text}");
    assert_eq!(
        got[0].properties.content_type().as_ref().unwrap().as_str(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(got[0].routing_key.as_str(), "sprintly.comment.created");
}

async fn unroutable_messages_fail_to_be_tried_again() {
    let (_connection, _channel) = consumer().await;
    let mut options = options(CANARY);
    options["routing"] = json!("elsewhere.{model}");
    let row = one_try("rabbitmq", options, "item", "msg_unroutable").await;
    failed_retryable(&row);
    let Outcome::Failed { reason, .. } = &row.outcome else {
        unreachable!()
    };
    assert!(
        reason.contains("no queue takes routing key `elsewhere.item`"),
        "{reason}"
    );
}

async fn a_wrong_password_is_final_and_hidden() {
    let wrong = format!("{CANARY}-wrong");
    let report = send("rabbitmq", options(&wrong), "item").await;
    let shown = lookout_testkit::assert_hidden(&report, CANARY);
    let row = &report.results[0].delivery;
    assert!(matches!(row.outcome, Outcome::Failed { .. }), "{shown}");
    assert_eq!(
        row.attempts, 1,
        "a refused login is not tried again: {shown}"
    );
    assert!(!row.retry.is_retryable(), "{shown}");
}

async fn a_broker_killed_mid_run_loses_nothing() {
    let (connection, _) = consumer().await;
    drop(connection);
    servers::kill("rabbitmq");
    let down = one_try("rabbitmq", options(CANARY), "item", "msg_while_down").await;
    failed_retryable(&down);

    servers::restart("rabbitmq");
    // The queue and its binding are durable, but RabbitMQ may still be recovering them
    // when its port opens: declare them again (nothing was accepted while it was down).
    let (_connection, channel) = consumer().await;
    let again = one_try("rabbitmq", options(CANARY), "item", "msg_while_down").await;
    assert_eq!(again.outcome, Outcome::Delivered { status: 0 }, "{again:?}");
    let got = drain(&channel).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].properties.message_id().as_ref().unwrap().as_str(),
        "msg_while_down"
    );
}
