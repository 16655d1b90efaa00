//! Figure 7, `lookout serve`: how fast the durable intake accepts events, and how fast
//! its workers then drain them, against the in-memory dispatch of figure 2.
//!
//! Each run starts serve in-process with its workers off, on a fresh SQLite store (WAL,
//! `synchronous = FULL`: every accepted event is on disk before its 202) in a temporary
//! folder under target/bench, and POSTs `serve_events` events over HTTP, `INTAKE_CONCURRENCY`
//! at a time. Then the workers run alone on that store (`server::run_workers`, default
//! concurrency) until nothing is queued. Last, the same number of deliveries go through
//! `Engine::dispatch_to` with the workers' concurrency, to the same sink: the drain rate is
//! compared with that, measured in the same run, as well as with figure 2's rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream;
use lookout_server::intake::{self, ServeConfig};
use lookout_server::policy::WorkerConfig;
use lookout_server::store::{self, Store};
use serde_json::{Value, json};

use crate::common;
use crate::stats::{median, round3, rounded};
use crate::throughput::lookout_run;
use crate::{Bench, Plan};

/// POSTs in flight at once during intake.
const INTAKE_CONCURRENCY: usize = 32;
const TOKEN: &str = "bench-token-0123456789abcdef";
/// The longest a drain may take before the bench gives up on it.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(bench: &Bench) -> Value {
    let Plan {
        serve_events: events,
        serve_runs: runs,
        ..
    } = bench.plan;
    let url = bench.sink.url(0, 0);
    let client = common::bare_client();
    let engine = common::engine(common::settings());
    let instances = [common::webhook("serve-compare", std::slice::from_ref(&url))];
    let concurrency = WorkerConfig::default().concurrency;

    let (mut intake, mut drain, mut dispatch, mut ratios) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let dir = tempfile::tempdir_in(&bench.scratch).expect("temporary folder");
        let database = dir.path().join("lookout.db").display().to_string();
        let (store, _lock) = store::open_for_serve(&database).await.expect("store");
        put_product(&*store, &url).await;

        let accepted = accept(store.clone(), &client, &bench.event, events).await;
        let drained = drain_all(store.clone(), bench, events).await;
        let started = Instant::now();
        lookout_run(&engine, &bench.event, &instances, events, concurrency).await;
        let dispatched = events as f64 / started.elapsed().as_secs_f64();

        intake.push(accepted);
        drain.push(drained);
        dispatch.push(dispatched);
        ratios.push(drained / dispatched);
    }
    json!({
        "events": events,
        "runs": runs,
        "intake_concurrency": INTAKE_CONCURRENCY,
        "worker_concurrency": concurrency,
        "accepted_per_s": median(&intake).round(),
        "drain_per_s": median(&drain).round(),
        "dispatch_per_s": median(&dispatch).round(),
        "drain_vs_dispatch": round3(median(&ratios)),
        "samples": {
            "accepted_per_s": rounded(&intake),
            "drain_per_s": rounded(&drain),
            "dispatch_per_s": rounded(&dispatch),
            "drain_vs_dispatch": rounded(&ratios),
        },
    })
}

/// The product `bench`: one webhook with one URL, so one delivery per event.
async fn put_product(store: &dyn Store, url: &str) {
    let table = json!({ "webhook": { "urls": [url] } });
    let instances = store::instances_from_table(table.as_object().expect("a table"))
        .unwrap_or_else(|problems| panic!("product config: {problems:?}"));
    store
        .put_product("bench", &instances)
        .await
        .expect("product");
}

/// Serve with workers off; `n` events POSTed, each answered 202. Events accepted per
/// second.
async fn accept(
    store: Arc<dyn Store>,
    client: &reqwest::Client,
    event: &lookout::Event,
    n: usize,
) -> f64 {
    let mut config = ServeConfig::new(TOKEN);
    config.settings = common::settings();
    config.workers = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!(
        "http://{}/v1/products/bench/events",
        listener.local_addr().expect("address")
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(intake::run(listener, store, config, async {
        let _ = stopped.await;
    }));
    let body = common::body(event);
    let started = Instant::now();
    stream::iter(0..n)
        .map(|_| post(client, &endpoint, body.clone()))
        .buffer_unordered(INTAKE_CONCURRENCY)
        .for_each(|()| async {})
        .await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    serving.await.expect("serve task").expect("serve");
    rate
}

async fn post(client: &reqwest::Client, endpoint: &str, body: bytes::Bytes) {
    let answer = client
        .post(endpoint)
        .bearer_auth(TOKEN)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST to serve failed: {e}"));
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    assert_eq!(status.as_u16(), 202, "serve answered {status}: {text}");
}

/// The workers alone on `store` until nothing is queued; deliveries per second. Checks
/// that the sink received every one of the `n`.
async fn drain_all(store: Arc<dyn Store>, bench: &Bench, n: usize) -> f64 {
    let config = WorkerConfig {
        poll: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let before = bench.sink.received();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let working = tokio::spawn(intake::run_workers(
        store.clone(),
        common::settings(),
        config,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    loop {
        let depth = store.stats().await.expect("stats").queue_depth;
        if depth == 0 {
            break;
        }
        assert!(
            started.elapsed() < DRAIN_LIMIT,
            "{depth} deliveries still queued"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    working.await.expect("worker task").expect("workers");
    let received = bench.sink.received() - before;
    assert_eq!(received, n as u64, "the sink received every delivery once");
    rate
}
