//! Figure 10, coalescing (docs/SHAPING.md): 1,000 updates to 50 items over 10 s, posted
//! to the in-process `serve` at a steady pace, once to a webhook that coalesces updates
//! of an item (`coalesce = { by = "attributes.number", window = "5s", max_wait = "30s" }`)
//! and once to the same webhook without it. Each run ends when the sink has had every
//! delivery that run sends (and the queue is empty); it reports the deliveries sent and
//! this process's CPU time (intake, store, workers, the bench's client and sink alike)
//! per event posted. SQLite only.

use std::time::{Duration, Instant};

use lookout_server::store::{self, DeliveryFilter, Status, Store};
use serde_json::{Value, json};

use crate::serve::{Serving, post};
use crate::throughput::process_cpu_seconds;
use crate::{Bench, common, sink};

/// The longest a run may take to deliver what it sends.
const RUN_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(bench: &Bench) -> Value {
    let plan = bench.plan;
    let (updates, items, spread) = (
        plan.shaping_updates,
        plan.shaping_items,
        plan.shaping_spread,
    );
    let window = if spread >= Duration::from_secs(5) {
        "5s"
    } else {
        "1s"
    };
    let coalesce = json!({"by": "attributes.number", "window": window, "max_wait": "30s"});
    let plain = one_run(bench, None, updates, items, spread).await;
    let coalesced = one_run(bench, Some(coalesce.clone()), updates, items, spread).await;
    let per_event = |run: &Value| run["cpu_s"].as_f64().unwrap_or(0.0) / updates as f64;
    json!({
        "updates": updates,
        "items": items,
        "spread_s": spread.as_secs_f64(),
        "coalesce": coalesce,
        "plain": plain,
        "coalesced": coalesced,
        "cpu_ms_per_event_plain": per_event(&plain) * 1_000.0,
        "cpu_ms_per_event_coalesced": per_event(&coalesced) * 1_000.0,
        "cost_ratio": per_event(&coalesced) / per_event(&plain).max(f64::MIN_POSITIVE),
    })
}

/// One run on a fresh SQLite store: `updates` events spread evenly over `spread`,
/// item numbers taken in turn; what was sent and what it cost.
async fn one_run(
    bench: &Bench,
    coalesce: Option<Value>,
    updates: usize,
    items: usize,
    spread: Duration,
) -> Value {
    let dir = tempfile::tempdir_in(&bench.scratch).expect("temporary folder");
    let database = dir.path().join("lookout.db").display().to_string();
    let (store, _lock) = store::open_for_serve(&database).await.expect("store");
    let target = sink::Sink::start(1);
    let mut hook = json!({"service": "webhook", "urls": [target.url(0, 0)], "concurrency": 64});
    if let Some(coalesce) = coalesce {
        hook["coalesce"] = coalesce;
    }
    let table = json!({ "board": hook });
    let instances = store::instances_from_table(table.as_object().expect("a table"))
        .unwrap_or_else(|problems| panic!("product config: {problems:?}"));
    store
        .put_product("board", &instances)
        .await
        .expect("product");
    let serving = Serving::start(store.clone(), true).await;
    let client = common::bare_client();
    let endpoint = format!("{}/v1/products/board/events", serving.base);
    let bodies = item_updates(bench, items);

    let cpu = process_cpu_seconds();
    let started = Instant::now();
    let mut tick = tokio::time::interval(spread / updates.max(1) as u32);
    for n in 0..updates {
        tick.tick().await;
        post(&client, &endpoint, bodies[n % items].clone()).await;
    }
    let posted_s = started.elapsed().as_secs_f64();
    settle(&*store, started).await;
    let took_s = started.elapsed().as_secs_f64();
    let cpu_s = process_cpu_seconds() - cpu;
    serving.stop().await;
    let superseded = count(&*store, Status::Superseded).await;
    json!({
        "sent": target.received(),
        "superseded": superseded,
        "posted_s": posted_s,
        "until_all_sent_s": took_s,
        "cpu_s": cpu_s,
    })
}

/// The bench's event as an update of each of `items` items (numbers 1 to `items`).
fn item_updates(bench: &Bench, items: usize) -> Vec<bytes::Bytes> {
    let event: Value = serde_json::from_str(bench.event.raw()).expect("the bench event");
    (1..=items)
        .map(|number| {
            let mut update = event.clone();
            update["action"] = json!("updated");
            update["attributes"]["number"] = json!(number);
            bytes::Bytes::from(update.to_string())
        })
        .collect()
}

/// Waits until nothing is queued: every delivery sent (or superseded).
async fn settle(store: &dyn Store, started: Instant) {
    loop {
        let stats = store.stats().await.expect("stats");
        if stats.queue_depth == 0 {
            return;
        }
        assert!(started.elapsed() < RUN_LIMIT, "the run did not settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(store: &dyn Store, status: Status) -> usize {
    let filter = DeliveryFilter {
        status: Some(status),
        ..DeliveryFilter::default()
    };
    store.deliveries(&filter).await.expect("deliveries").len()
}
