//! Figure 7, `lookout serve`: how fast the durable intake accepts events, how fast its
//! workers then drain them, how long an event takes from its POST to the sink, and how
//! much memory a long queue costs, against the in-memory dispatch of figure 2 and the
//! disk's own fsync rate, all measured in the same run.
//!
//! Each run starts serve in-process with its workers off, on a fresh SQLite store (WAL,
//! `synchronous = FULL`: every accepted event is on disk before its 202) in a temporary
//! folder under target/bench, and POSTs `serve_events` events over HTTP, `CONCURRENCY` at
//! a time. Then the workers run alone on that store (`server::run_workers`, concurrency
//! `CONCURRENCY`) until nothing is queued. Last, the same number of deliveries go through
//! `Engine::dispatch_to`, `CONCURRENCY` at a time, to the same sink: intake and drain are
//! compared with that. A loop writing and fsyncing a file in the same folder gives the
//! disk's fsync rate. With `LOOKOUT_TEST_DATABASE_URL` set (scripts/with-postgres.sh),
//! the same on PostgreSQL with 1, 2 and 4 worker processes (`serve_pg`, which main.rs
//! runs after this and files under `postgres`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream;
use lookout_server::http::{self, ServeConfig};
use lookout_server::policy::{WorkerConfig, default_lease};
use lookout_server::routing::RouteCache;
use lookout_server::store::{self, DeliveryFilter, NewEvent, Status, Store};
use serde_json::{Value, json};

use crate::stats::{median, percentile, round3, rounded};
use crate::throughput::{bare_run, lookout_run};
use crate::{Bench, Plan, common, sink};

/// POSTs in flight at once during intake, the workers' concurrency, and the in-process
/// dispatches they are compared with.
pub const CONCURRENCY: usize = 32;
pub const TOKEN: &str = "bench-token-0123456789abcdef";
/// The longest a drain may take before the bench gives up on it.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// Events queued for the memory figure, and the small queue it is compared with.
const QUEUED: usize = 100_000;
const QUEUED_SMALL: usize = 1_000;

pub async fn run(bench: &Bench) -> Value {
    let Plan {
        serve_events: events,
        serve_runs: runs,
        ..
    } = bench.plan;
    let url = bench.sink.url(0, 0);
    let engine = common::engine(common::settings());
    let instances = [common::webhook("serve-compare", std::slice::from_ref(&url))];

    // `LOOKOUT_BENCH_PROFILE=intake` (or `drain`): that phase alone, for `perf record`.
    if let Ok(phase) = std::env::var("LOOKOUT_BENCH_PROFILE") {
        return profile(bench, &phase, &url, events * runs).await;
    }

    let mut samples: [Vec<f64>; 5] = Default::default();
    let [intake, drain, dispatch, bare, fsync] = &mut samples;
    let client = common::bare_client();
    let body = common::body(&bench.event);
    for _ in 0..runs {
        let dir = tempfile::tempdir_in(&bench.scratch).expect("temporary folder");
        fsync.push(fsync_rate(dir.path()));
        let database = dir.path().join("lookout.db").display().to_string();
        let (store, _lock) = store::open_for_serve(&database).await.expect("store");
        put_product(&*store, "bench", &url).await;
        intake.push(accept(store.clone(), &bench.event, events).await);
        drain.push(drain_all(store.clone(), vec![store.clone()], bench, events).await);
        let started = Instant::now();
        lookout_run(&engine, &bench.event, &instances, events, CONCURRENCY).await;
        dispatch.push(events as f64 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        bare_run(&client, &url, &body, events, CONCURRENCY).await;
        bare.push(events as f64 / started.elapsed().as_secs_f64());
    }
    let ratio =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(a, b)| a / b).collect() };
    let (intake_ratio, drain_ratio, per_fsync) = (
        ratio(intake, dispatch),
        ratio(drain, dispatch),
        ratio(intake, fsync),
    );
    let (intake_bare, drain_bare) = (ratio(intake, bare), ratio(drain, bare));
    json!({
        "events": events,
        "runs": runs,
        "intake_concurrency": CONCURRENCY,
        "worker_concurrency": CONCURRENCY,
        "accepted_per_s": median(intake).round(),
        "drain_per_s": median(drain).round(),
        "dispatch_per_s": median(dispatch).round(),
        "bare_per_s": median(bare).round(),
        "intake_vs_bare": round3(median(&intake_bare)),
        "drain_vs_bare": round3(median(&drain_bare)),
        "fsync_per_s": median(fsync).round(),
        "intake_vs_dispatch": round3(median(&intake_ratio)),
        "drain_vs_dispatch": round3(median(&drain_ratio)),
        "events_per_fsync": round3(median(&per_fsync)),
        "latency_sqlite": sqlite_latency(bench, median(drain) / 2.0).await,
        "memory": queue_memory(bench).await,
        "samples": {
            "accepted_per_s": rounded(intake),
            "drain_per_s": rounded(drain),
            "dispatch_per_s": rounded(dispatch),
            "bare_per_s": rounded(bare),
            "intake_vs_bare": rounded(&intake_bare),
            "drain_vs_bare": rounded(&drain_bare),
            "fsync_per_s": rounded(fsync),
            "intake_vs_dispatch": rounded(&intake_ratio),
            "drain_vs_dispatch": rounded(&drain_ratio),
        },
    })
}

/// One phase alone on a fresh store, `events` events: its rate.
async fn profile(bench: &Bench, phase: &str, url: &str, events: usize) -> Value {
    let dir = tempfile::tempdir_in(&bench.scratch).expect("temporary folder");
    let database = dir.path().join("lookout.db").display().to_string();
    let per_s = match phase {
        "intake" => {
            let (store, _lock) = store::open_for_serve(&database).await.expect("store");
            put_product(&*store, "bench", url).await;
            accept(store, &bench.event, events).await
        }
        "drain" => {
            // Queued directly, so that a profile shows the drain alone.
            fill_queue(&database, url, &bench.event, events).await;
            let (store, _lock) = store::open_for_serve(&database).await.expect("store");
            drain_all(store.clone(), vec![store], bench, events).await
        }
        other => panic!("LOOKOUT_BENCH_PROFILE: `{other}` is neither intake nor drain"),
    };
    json!({ "profiled": phase, "per_s": per_s.round() })
}

/// Writes and fsyncs a small file in `dir` over and over for about half a second (at
/// most 5,000 times): fsyncs per second, what one commit at a time could reach.
fn fsync_rate(dir: &std::path::Path) -> f64 {
    use std::io::Write as _;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("fsync probe file");
    let started = Instant::now();
    let mut done = 0;
    while done < 5_000 && started.elapsed() < Duration::from_millis(500) {
        file.write_all(&[b'x'; 512]).expect("write");
        file.sync_all().expect("fsync");
        done += 1;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(path);
    rate
}

/// A product with one webhook posting to `url`, so one delivery per event; its lane
/// takes as many attempts at once as the workers have slots (the comparison is at the
/// same concurrency).
pub async fn put_product(store: &dyn Store, id: &str, url: &str) {
    let table = json!({ "webhook": { "urls": [url], "concurrency": 1_024 } });
    let instances = store::instances_from_table(table.as_object().expect("a table"))
        .unwrap_or_else(|problems| panic!("product config: {problems:?}"));
    store.put_product(id, &instances).await.expect("product");
}

/// A running intake (in-process `serve`), stopped when dropped.
pub struct Serving {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Serving {
    pub async fn start(store: Arc<dyn Store>, workers: bool) -> Serving {
        let mut config = ServeConfig::new(TOKEN);
        config.settings = common::settings();
        config.workers = workers;
        config.worker = worker_config();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(http::run(listener, store, config, async {
            let _ = stopped.await;
        }));
        Serving {
            base,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("serve task").expect("serve");
        }
    }
}

/// Serve with workers off; `n` events POSTed, each answered 202. Events accepted per
/// second.
pub async fn accept(store: Arc<dyn Store>, event: &lookout::Event, n: usize) -> f64 {
    let serving = Serving::start(store, false).await;
    let client = common::bare_client();
    let endpoint = format!("{}/v1/products/bench/events", serving.base);
    let body = common::body(event);
    let started = Instant::now();
    stream::iter(0..n)
        .map(|_| post(&client, &endpoint, body.clone()))
        .buffer_unordered(CONCURRENCY)
        .for_each(|()| async {})
        .await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    serving.stop().await;
    rate
}

pub async fn post(client: &reqwest::Client, endpoint: &str, body: bytes::Bytes) {
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

/// Worker processes (each with its own store from `open`), stopped by [`stop_workers`].
pub type Workers = Vec<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)>;

/// The workers of every figure: `CONCURRENCY` attempts at a time, a 20 ms poll, and
/// the lease that goes with the bench's engine deadline.
fn worker_config() -> WorkerConfig {
    WorkerConfig {
        poll: Duration::from_millis(20),
        concurrency: CONCURRENCY,
        lease: default_lease(common::settings().deadline),
        ..WorkerConfig::default()
    }
}

pub fn start_workers(stores: Vec<Arc<dyn Store>>) -> Workers {
    stores
        .into_iter()
        .map(|store| {
            // Each with its own owner name, as separate processes have.
            let config = worker_config();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(http::run_workers(
                store,
                common::settings(),
                config,
                None,
                async {
                    let _ = stopped.await;
                },
            ));
            (stop, task)
        })
        .collect()
}

pub async fn stop_workers(workers: Workers) {
    for (stop, task) in workers {
        let _ = stop.send(());
        task.await.expect("worker task").expect("workers");
    }
}

/// Worker processes, one per store of `workers`, on `store`'s queue until nothing is
/// queued; deliveries per second. Checks that the sink received every one of the `n`.
pub async fn drain_all(
    store: Arc<dyn Store>,
    workers: Vec<Arc<dyn Store>>,
    bench: &Bench,
    n: usize,
) -> f64 {
    let before = bench.sink.received();
    let started = Instant::now();
    let workers = start_workers(workers);
    // The sink's count first, which costs nothing: counting the queue is a query over
    // every delivery, and asking it every few milliseconds would slow what it measures.
    while bench.sink.received() - before < n as u64 {
        assert!(
            started.elapsed() < DRAIN_LIMIT,
            "{} of {n} deliveries arrived",
            bench.sink.received() - before
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Then until every outcome is recorded.
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
    stop_workers(workers).await;
    let received = bench.sink.received() - before;
    assert_eq!(received, n as u64, "the sink received every delivery once");
    rate
}

/// Idle and under-load latency on a fresh SQLite store, serve with its workers; the load
/// posts `load_rate` events per second.
async fn sqlite_latency(bench: &Bench, load_rate: f64) -> Value {
    let dir = tempfile::tempdir_in(&bench.scratch).expect("temporary folder");
    let database = dir.path().join("lookout.db").display().to_string();
    let (store, _lock) = store::open_for_serve(&database).await.expect("store");
    let probe_sink = sink::Sink::start(1);
    put_product(&*store, "bench", &bench.sink.url(0, 0)).await;
    put_product(&*store, "probe", &probe_sink.url(0, 0)).await;
    let serving = Serving::start(store, true).await;
    let figures = latency(bench, &serving.base, &probe_sink, load_rate).await;
    serving.stop().await;
    figures
}

/// POST → arrival at the sink, one probe event at a time (`latency_probes` of them):
/// with nothing else going on, then while other events for product `bench` are posted
/// at `load_rate` per second (half the drain rate measured before: a load the workers
/// keep up with, or the probes would only measure a growing backlog). The probes go to
/// product `probe`, whose webhook posts to `probe_sink`, so that their arrivals can be
/// told from the load's.
pub async fn latency(bench: &Bench, base: &str, probe_sink: &sink::Sink, load_rate: f64) -> Value {
    let probes = bench.plan.latency_probes;
    let client = common::bare_client();
    let probe = format!("{base}/v1/products/probe/events");
    let body = common::body(&bench.event);
    let idle = probe_latencies(&client, &probe, &body, probe_sink, probes).await;

    let loading = Arc::new(AtomicBool::new(true));
    let load = tokio::spawn(keep_posting(
        client.clone(),
        format!("{base}/v1/products/bench/events"),
        body.clone(),
        load_rate,
        loading.clone(),
    ));
    // Let the load reach its pace first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let loaded = probe_latencies(&client, &probe, &body, probe_sink, probes).await;
    loading.store(false, Ordering::Relaxed);
    let load_events = load.await.expect("load task");
    json!({
        "probes": probes,
        "idle_p50_ms": round3(percentile(&idle, 50.0)),
        "idle_p99_ms": round3(percentile(&idle, 99.0)),
        "load_p50_ms": round3(percentile(&loaded, 50.0)),
        "load_p99_ms": round3(percentile(&loaded, 99.0)),
        "load_events": load_events,
        "load_rate_per_s": load_rate.round(),
    })
}

/// The most events the load sends (it stops earlier, when the probes are done).
const LOAD_LIMIT: usize = 200_000;

/// Posts `rate` events per second, in ticks of 10 ms, until `loading` turns false.
async fn keep_posting(
    client: reqwest::Client,
    endpoint: String,
    body: bytes::Bytes,
    rate: f64,
    loading: Arc<AtomicBool>,
) -> usize {
    let per_tick = ((rate / 100.0).ceil() as usize).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0;
    while loading.load(Ordering::Relaxed) && sent < LOAD_LIMIT {
        tick.tick().await;
        let posts = (0..per_tick).map(|_| post(&client, &endpoint, body.clone()));
        futures::future::join_all(posts).await;
        sent += per_tick;
    }
    sent
}

/// Milliseconds from each POST to its arrival at `sink`, one at a time.
pub async fn probe_latencies(
    client: &reqwest::Client,
    endpoint: &str,
    body: &bytes::Bytes,
    sink: &sink::Sink,
    n: usize,
) -> Vec<f64> {
    let mut taken = Vec::with_capacity(n);
    for _ in 0..n {
        let before = sink.received();
        let started = Instant::now();
        post(client, endpoint, body.clone()).await;
        while sink.received() == before {
            assert!(started.elapsed() < DRAIN_LIMIT, "a probe never arrived");
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        taken.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    taken
}

/// Peak RSS of a `serve` child process delivering [`CHILD_DELIVERS`] events of a queue
/// of [`QUEUED`], against the same work from a queue of [`QUEUED_SMALL`]: flat means
/// the queue is not held in memory.
async fn queue_memory(bench: &Bench) -> Value {
    let queued = bench.plan.queued_events.min(QUEUED);
    let mut peaks = serde_json::Map::new();
    let small = QUEUED_SMALL.min(queued / 10).max(CHILD_DELIVERS as usize);
    for n in [small, queued] {
        let dir = tempfile::tempdir_in(&bench.scratch).expect("temporary folder");
        let database = dir.path().join("lookout.db").display().to_string();
        fill_queue(&database, &bench.sink.url(0, 0), &bench.event, n).await;
        let report = tokio::task::spawn_blocking(move || queue_child(&database))
            .await
            .expect("serve memory child");
        peaks.insert(n.to_string(), report);
    }
    json!({ "queued": queued, "children": peaks })
}

/// `n` events for product `bench` stored directly, in batches, routed as the intake
/// routes them.
async fn fill_queue(database: &str, url: &str, event: &lookout::Event, n: usize) {
    let store = store::open(database).await.expect("store");
    put_product(&*store, "bench", url).await;
    let routes = RouteCache::new(common::settings())
        .routes(store.as_ref(), "bench")
        .await
        .expect("read the product")
        .expect("the product");
    let webhook = routes.route("webhook").expect("its webhook");
    let payload = String::from_utf8(common::body(event).to_vec()).expect("UTF-8");
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent {
            id: format!("evt_queued_{i}"),
            product: "bench".to_owned(),
            payload: payload.clone(),
            received_at: store::now_ms(),
            deliveries: vec![webhook.delivery("bench", event, format!("msg_queued_{i}"))],
            idempotency: None,
            routed_with: None,
            trace_context: None,
        })
        .collect();
    for batch in events.chunks(5_000) {
        store.accept_batch(batch).await.expect("queue events");
    }
}

/// How many deliveries the memory child makes before it reports (the same work whatever
/// the queue), and the longest it may take.
const CHILD_DELIVERS: u64 = 500;
const CHILD_LIMIT: Duration = Duration::from_secs(60);

fn queue_child(database: &str) -> Value {
    let output = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .env("LOOKOUT_BENCH_CHILD", "serve")
        .env("LOOKOUT_BENCH_DATABASE", database)
        .output()
        .expect("start the serve memory child");
    assert!(
        output.status.success(),
        "serve memory child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the serve memory child prints JSON")
}

/// The child's side: `serve` on the queued database, as the binary runs it, until its
/// workers have made [`CHILD_DELIVERS`] deliveries; prints its peak RSS and how many
/// deliveries were left.
pub fn queue_child_main() {
    let database = std::env::var("LOOKOUT_BENCH_DATABASE").expect("LOOKOUT_BENCH_DATABASE");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let baseline_kb = crate::memory::status_kb("VmRSS");
    let (peak_kb, left) = runtime.block_on(async {
        let (store, _lock) = store::open_for_serve(&database).await.expect("store");
        let serving = Serving::start(store.clone(), true).await;
        let started = Instant::now();
        // Counted through the index on `updated_at`: a count of the whole queue (stats)
        // would itself take memory that grows with the queue.
        let delivered = DeliveryFilter {
            status: Some(Status::Delivered),
            limit: CHILD_DELIVERS as usize,
            ..DeliveryFilter::default()
        };
        while (store
            .deliveries(&delivered)
            .await
            .expect("deliveries")
            .len() as u64)
            < CHILD_DELIVERS
            && started.elapsed() < CHILD_LIMIT
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        serving.stop().await;
        // The peak before counting what is left (a count of the whole queue).
        let peak_kb = crate::memory::status_kb("VmHWM");
        (peak_kb, store.stats().await.expect("stats").queue_depth)
    });
    let report = json!({
        "baseline_kb": baseline_kb,
        "peak_kb": peak_kb,
        "left_queued": left,
    });
    println!("{report}");
}
