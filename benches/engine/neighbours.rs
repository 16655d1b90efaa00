//! Figure 9, the noisy neighbour: how long product B's events take from POST to arrival
//! while product A bursts, on SQLite and (under scripts/with-postgres.sh) PostgreSQL.
//!
//! `serve` runs in-process with its workers (32 slots). B's webhook posts to a sink of
//! its own; B's probes are posted one every 20 ms, whether or not the one before has
//! arrived, and each is timed from its POST until the sink has counted as many as were
//! posted up to it (B's deliveries arrive in the order they were posted, give or take the
//! few in flight at once). First with A idle; then right after A posted a burst to a
//! Slack hook (A's Slack service posting to the bench's sink, one message a second in
//! bursts of 3); then right after A posted a burst to a webhook that answers in 3 s. A is
//! never drained: its paced burst alone would take two minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use lookout_server::store::{self, Store};
use lookout_testkit::postgres::TestSchema;
use serde_json::{Value, json};

use crate::serve::{Serving, post};
use crate::stats::{percentile, round3};
use crate::{Bench, common, sink};

/// A's bursts, as in the isolation issue: to the paced hook and to the slow webhook.
const PACED_BURST: usize = 120;
const SLOW_BURST: usize = 300;

pub async fn run(bench: &Bench) -> Value {
    let dir = tempfile::tempdir_in(&bench.scratch).expect("temporary folder");
    let database = dir.path().join("lookout.db").display().to_string();
    let (store, _lock) = store::open_for_serve(&database).await.expect("store");
    let sqlite = figure(bench, store).await;
    let postgres = if std::env::var(TestSchema::VAR).is_ok() {
        let schema = TestSchema::create().await;
        let store = store::open(&schema.url).await.expect("PostgreSQL store");
        let figures = figure(bench, store).await;
        schema.drop_schema().await;
        figures
    } else {
        json!({ "skipped": format!("{} is not set", TestSchema::VAR) })
    };
    json!({ "sqlite": sqlite, "postgres": postgres })
}

/// The three situations on one store: B idle, B during A's paced burst, B during A's
/// slow burst.
async fn figure(bench: &Bench, store: Arc<dyn Store>) -> Value {
    // Every service with the defaults (a lane's cap of 8 among them).
    let quiet = sink::Sink::start(1);
    let webhook = |url: String| json!({ "hook": { "service": "webhook", "urls": [url] } });
    put_table(&*store, "quiet", webhook(quiet.url(0, 0))).await;
    let hook = format!("{}/services/T0/B0/paced", bench.sink.url(0, 0));
    let table = json!({ "chat": { "service": "slack", "url": hook } });
    put_table(&*store, "paced", table).await;
    put_table(&*store, "slow", webhook(bench.sink.url(3_000, 1))).await;
    let serving = Serving::start(store, true).await;
    let probes = bench.plan.latency_probes;
    let client = common::bare_client();
    let body = common::body(&bench.event);
    let quiet_events = format!("{}/v1/products/quiet/events", serving.base);
    let probe = || steady_probes(&client, &quiet_events, &body, &quiet, probes);

    let idle = probe().await;
    burst(
        &client,
        &serving.base,
        "paced",
        &body,
        bursts(bench, PACED_BURST),
    )
    .await;
    let paced = probe().await;
    burst(
        &client,
        &serving.base,
        "slow",
        &body,
        bursts(bench, SLOW_BURST),
    )
    .await;
    let slow = probe().await;
    serving.stop().await;
    let shown = |samples: &[f64]| {
        json!({
            "p50_ms": round3(percentile(samples, 50.0)),
            "p99_ms": round3(percentile(samples, 99.0)),
            "max_ms": round3(samples.iter().copied().fold(0.0, f64::max)),
        })
    };
    json!({
        "probes": probes,
        "paced_burst": bursts(bench, PACED_BURST),
        "slow_burst": bursts(bench, SLOW_BURST),
        "idle": shown(&idle),
        "during_paced_burst": shown(&paced),
        "during_slow_burst": shown(&slow),
    })
}

/// Time between two probes.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// The longest a probe may take before the figure gives up.
const PROBE_LIMIT: Duration = Duration::from_secs(300);

/// `n` events POSTed to `endpoint`, one every [`PROBE_EVERY`], each timed (ms) from its
/// POST until `sink` has counted that many.
async fn steady_probes(
    client: &reqwest::Client,
    endpoint: &str,
    body: &bytes::Bytes,
    sink: &sink::Sink,
    n: usize,
) -> Vec<f64> {
    let before = sink.received();
    let started = Instant::now();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let posting = async {
        let mut posted = Vec::with_capacity(n);
        let mut sending = Vec::with_capacity(n);
        for _ in 0..n {
            tick.tick().await;
            posted.push(Instant::now());
            let (client, endpoint, body) = (client.clone(), endpoint.to_owned(), body.clone());
            sending.push(tokio::spawn(
                async move { post(&client, &endpoint, body).await },
            ));
        }
        for sent in sending {
            sent.await.expect("a probe's POST");
        }
        posted
    };
    let watching = async {
        let mut arrived = Vec::with_capacity(n);
        while arrived.len() < n {
            let count = (sink.received() - before) as usize;
            while arrived.len() < count.min(n) {
                arrived.push(Instant::now());
            }
            assert!(started.elapsed() < PROBE_LIMIT, "probes did not arrive");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        arrived
    };
    let (posted, arrived) = futures::join!(posting, watching);
    posted
        .iter()
        .zip(&arrived)
        .map(|(at, came)| came.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        .collect()
}

/// A burst's size: the issue's, or a small one for the smoke run.
fn bursts(bench: &Bench, full: usize) -> usize {
    full.min(bench.plan.latency_probes * 2)
}

/// `n` events of `product`, 32 at a time, each accepted.
async fn burst(client: &reqwest::Client, base: &str, product: &str, body: &bytes::Bytes, n: usize) {
    let endpoint = format!("{base}/v1/products/{product}/events");
    let posts = (0..n).map(|_| post(client, &endpoint, body.clone()));
    futures::stream::iter(posts)
        .buffer_unordered(32)
        .for_each(|()| async {})
        .await;
}

async fn put_table(store: &dyn Store, id: &str, table: Value) {
    let instances = store::instances_from_table(table.as_object().expect("a table"))
        .unwrap_or_else(|problems| panic!("product config: {problems:?}"));
    store.put_product(id, &instances).await.expect("product");
}
