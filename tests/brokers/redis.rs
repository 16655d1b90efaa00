//! Redis Streams: the `redis` service against a real redis-server, read back with
//! redis-rs (`XRANGE`).

use std::collections::HashMap;
use std::time::Duration;

use lookout::Outcome;
use serde_json::{Value, json};

use super::servers;
use super::{CANARY, TestFn, delivered, failed_retryable, one_try, payload, send};

pub const TESTS: &[(&str, TestFn)] = &[
    ("redis_appends_to_the_stream_with_fields", || {
        Box::pin(appends_to_the_stream_with_fields())
    }),
    ("redis_maxlen_trims_the_stream", || {
        Box::pin(maxlen_trims_the_stream())
    }),
    ("redis_a_server_killed_mid_run_loses_nothing", || {
        Box::pin(a_server_killed_mid_run_loses_nothing())
    }),
    (
        "redis_the_retry_loop_waits_for_a_server_that_comes_back",
        || Box::pin(the_retry_loop_waits_for_a_server_that_comes_back()),
    ),
];

fn options(stream: &str) -> Value {
    let port = servers::redis();
    json!({ "url": format!("redis://:{CANARY}@127.0.0.1:{port}/0"), "stream": stream })
}

type Entry = (String, HashMap<String, Vec<u8>>);

/// Every entry of the stream `key`, oldest first.
async fn entries(key: &str) -> Vec<Entry> {
    let port = servers::redis();
    let client = redis::Client::open(format!("redis://:{CANARY}@127.0.0.1:{port}/0")).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap()
}

fn field(entry: &Entry, name: &str) -> String {
    String::from_utf8(entry.1[name].clone()).unwrap()
}

async fn appends_to_the_stream_with_fields() {
    let report = send("redis", options("sprintly:{product}"), "item-markup").await;
    let row = delivered(&report);
    let port = servers::redis();
    assert_eq!(
        row.target.as_deref(),
        Some(format!("redis://127.0.0.1:{port}/0?stream=sprintly:1111").as_str())
    );
    let got = entries("sprintly:1111").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(field(&got[0], "body"), payload("item-markup"));
    assert!(field(&got[0], "lookout-delivery-id").starts_with("msg_"));
    assert_eq!(field(&got[0], "lookout-event"), "Item.created");
    assert_eq!(field(&got[0], "content-type"), "application/json");
}

async fn maxlen_trims_the_stream() {
    let mut options = options("trimmed");
    options["maxlen"] = json!(1);
    options["format"] = json!("markdown");
    // Approximate trimming only drops whole nodes (100 entries each by default): write
    // more than one node's worth, and check that at most about a node remains.
    for _ in 0..250 {
        let row = one_try("redis", options.clone(), "favorite", "msg_trim").await;
        assert_eq!(row.outcome, Outcome::Delivered { status: 0 }, "{row:?}");
    }
    let got = entries("trimmed").await;
    assert!(got.len() < 250 && !got.is_empty(), "{} entries", got.len());
    assert_eq!(
        field(&got[0], "content-type"),
        "text/markdown; charset=utf-8"
    );
}

async fn a_server_killed_mid_run_loses_nothing() {
    servers::kill("redis");
    let down = one_try("redis", options("down"), "deploy", "msg_redis_down").await;
    failed_retryable(&down);
    servers::restart("redis");
    let again = one_try("redis", options("down"), "deploy", "msg_redis_down").await;
    assert_eq!(again.outcome, Outcome::Delivered { status: 0 }, "{again:?}");
    let got = entries("down").await;
    assert_eq!(got.len(), 1);
    assert_eq!(field(&got[0], "lookout-delivery-id"), "msg_redis_down");
}

/// In process (`lookout send`): the server is down at the first try and back before
/// the budget runs out; a later try delivers.
async fn the_retry_loop_waits_for_a_server_that_comes_back() {
    servers::kill("redis");
    let back = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        servers::restart("redis");
    });
    let settings = lookout::Settings {
        attempts: 20,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
        ..lookout_testkit::settings()
    };
    let json = lookout_testkit::fixture_json("item");
    let report =
        lookout_testkit::dispatch_one_with(settings, "redis", options("back"), &json).await;
    back.join().unwrap();
    let row = delivered(&report);
    assert!(row.attempts > 1, "{row:?}");
    assert_eq!(entries("back").await.len(), 1);
}
