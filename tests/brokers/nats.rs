//! NATS JetStream: the `nats` service against a real nats-server, read back with
//! async-nats from the stream.

use async_nats::jetstream::{self, stream};
use lookout::Outcome;
use serde_json::{Value, json};

use super::servers::{self, USER};
use super::{CANARY, TestFn, delivered, failed_retryable, one_try, payload, send};

pub const TESTS: &[(&str, TestFn)] = &[
    ("nats_publishes_to_the_stream_with_headers", || {
        Box::pin(publishes_to_the_stream_with_headers())
    }),
    ("nats_a_retried_delivery_is_stored_once", || {
        Box::pin(a_retried_delivery_is_stored_once())
    }),
    ("nats_a_server_killed_mid_run_loses_nothing", || {
        Box::pin(a_server_killed_mid_run_loses_nothing())
    }),
];

fn options(subject: &str) -> Value {
    let port = servers::nats();
    json!({
        "url": format!("nats://{USER}:{CANARY}@127.0.0.1:{port}"),
        "subject": subject,
    })
}

/// The `SPRINTLY` stream, capturing `sprintly.>` (created at first use; on disk, so it
/// outlives a restart).
async fn stream() -> stream::Stream {
    let port = servers::nats();
    let client = async_nats::ConnectOptions::with_user_and_password(USER.into(), CANARY.into())
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap();
    jetstream::new(client)
        .get_or_create_stream(stream::Config {
            name: "SPRINTLY".into(),
            subjects: vec!["sprintly.>".into()],
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn stored(stream: &mut stream::Stream) -> u64 {
    stream.info().await.unwrap().state.messages
}

async fn publishes_to_the_stream_with_headers() {
    let mut stream = stream().await;
    let before = stored(&mut stream).await;
    let report = send(
        "nats",
        options("sprintly.a.{model}.{action}"),
        "item-markup",
    )
    .await;
    let row = delivered(&report);
    let port = servers::nats();
    assert_eq!(
        row.target.as_deref(),
        Some(format!("nats://127.0.0.1:{port}/sprintly.a.item.created").as_str())
    );
    assert_eq!(stored(&mut stream).await, before + 1);
    let message = stream
        .get_last_raw_message_by_subject("sprintly.a.item.created")
        .await
        .unwrap();
    assert_eq!(message.payload, payload("item-markup").as_bytes());
    let header = |name: &str| message.headers.get(name).unwrap().as_str().to_owned();
    let id = header("lookout-delivery-id");
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(header("Nats-Msg-Id"), id, "JetStream deduplicates on it");
    assert_eq!(header("lookout-event"), "Item.created");
    assert_eq!(header("content-type"), "application/json");
}

async fn a_retried_delivery_is_stored_once() {
    let mut stream = stream().await;
    let before = stored(&mut stream).await;
    for _ in 0..2 {
        let row = one_try(
            "nats",
            options("sprintly.b.{model}"),
            "comment",
            "msg_twice",
        )
        .await;
        assert_eq!(row.outcome, Outcome::Delivered { status: 0 }, "{row:?}");
    }
    assert_eq!(
        stored(&mut stream).await,
        before + 1,
        "the second copy was dropped"
    );
}

async fn a_server_killed_mid_run_loses_nothing() {
    let mut stream = stream().await;
    let before = stored(&mut stream).await;
    servers::kill("nats");
    let down = one_try(
        "nats",
        options("sprintly.c.{model}"),
        "block",
        "msg_nats_down",
    )
    .await;
    failed_retryable(&down);

    servers::restart("nats");
    let again = one_try(
        "nats",
        options("sprintly.c.{model}"),
        "block",
        "msg_nats_down",
    )
    .await;
    assert_eq!(again.outcome, Outcome::Delivered { status: 0 }, "{again:?}");
    let mut stream = self::stream().await;
    assert_eq!(stored(&mut stream).await, before + 1);
    let message = stream
        .get_last_raw_message_by_subject("sprintly.c.block")
        .await
        .unwrap();
    assert_eq!(
        message.headers.get("Nats-Msg-Id").unwrap().as_str(),
        "msg_nats_down"
    );
}
