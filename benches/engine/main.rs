//! Lookout's benchmarks (`make bench`, which runs `cargo bench --bench engine` and turns
//! the JSON this writes into docs/BENCHMARKS.md).
//!
//! Everything is sent to a local sink on 127.0.0.1 (see `sink`). The machine is shared
//! and noisy, so every figure that has a goal is a ratio of two things measured in the
//! same run, interleaved, and the median of several runs.
//!
//! Under `cargo bench` (which passes `--bench`) it measures and writes the results to
//! `LOOKOUT_BENCH_OUT` (default `target/bench/results.json`). Under `cargo test` it runs
//! every scenario once at a tiny size and checks only that each works, so the bench
//! cannot rot unnoticed; it times nothing there.
//!
//! Environment: `LOOKOUT_BENCH_PYTHON` (a Python with Apprise installed, for the peer figure),
//! `LOOKOUT_BENCH_ONLY` (a comma-separated list of scenarios to run).

mod binding;
mod cli;
mod common;
mod console;
mod fanout;
mod isolation;
mod memory;
mod neighbours;
mod peer;
mod serve;
mod serve_pg;
mod shaping;
mod sink;
mod stats;
mod throughput;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lookout::Event;
use serde_json::{Map, Value, json};
// Links every service (the webhook) into this binary.
use services as _;

/// How big each scenario is.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Targets per event in the fan-out, isolation and peer scenarios.
    pub targets: usize,
    pub fanout_latency_ms: u64,
    pub fanout_rounds: usize,
    pub sequential_runs: usize,
    pub deliveries: usize,
    pub concurrency: usize,
    pub throughput_runs: usize,
    pub peer_repeats: usize,
    /// Rounds against a sink answering at once, and against one answering in 50 ms.
    pub peer_rounds_fast: usize,
    pub peer_rounds_slow: usize,
    /// Rounds and repeats of the binding against the Rust library: more than the peer's,
    /// since each round takes about a millisecond and a short run measures the noise.
    pub binding_rounds: usize,
    pub binding_repeats: usize,
    pub isolation_rounds: usize,
    pub isolation_spacing: Duration,
    pub isolation_pairs: usize,
    pub isolation_timeout: Duration,
    pub cli_runs: usize,
    pub in_flight: usize,
    pub memory_hold_ms: u64,
    /// Events POSTed to `serve` per run, and runs.
    pub serve_events: usize,
    pub serve_runs: usize,
    /// Stored deliveries of the product whose console pages are timed.
    pub console_deliveries: usize,
    /// Events timed one by one from POST to the sink, idle and under load.
    pub latency_probes: usize,
    /// Events queued for serve's memory figure.
    pub queued_events: usize,
    /// The coalescing figure: updates posted, to how many items, over how long.
    pub shaping_updates: usize,
    pub shaping_items: usize,
    pub shaping_spread: Duration,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            targets: 50,
            fanout_latency_ms: 50,
            fanout_rounds: 9,
            sequential_runs: 3,
            deliveries: 20_000,
            concurrency: 64,
            throughput_runs: 5,
            peer_repeats: 3,
            peer_rounds_fast: 20,
            peer_rounds_slow: 4,
            binding_rounds: 200,
            binding_repeats: 5,
            isolation_rounds: 30,
            isolation_spacing: Duration::from_millis(100),
            isolation_pairs: 5,
            isolation_timeout: Duration::from_secs(1),
            cli_runs: 40,
            in_flight: 1_000,
            memory_hold_ms: 3_000,
            serve_events: 5_000,
            serve_runs: 3,
            console_deliveries: 100_000,
            latency_probes: 200,
            queued_events: 100_000,
            shaping_updates: 1_000,
            shaping_items: 50,
            shaping_spread: Duration::from_secs(10),
        }
    }

    /// Just enough to show that every scenario works.
    fn smoke() -> Plan {
        Plan {
            targets: 5,
            fanout_latency_ms: 5,
            fanout_rounds: 1,
            sequential_runs: 1,
            deliveries: 100,
            concurrency: 8,
            throughput_runs: 1,
            peer_repeats: 1,
            peer_rounds_fast: 1,
            peer_rounds_slow: 1,
            binding_rounds: 1,
            binding_repeats: 1,
            isolation_rounds: 3,
            isolation_spacing: Duration::from_millis(20),
            isolation_pairs: 1,
            isolation_timeout: Duration::from_millis(200),
            cli_runs: 2,
            in_flight: 20,
            memory_hold_ms: 300,
            serve_events: 40,
            serve_runs: 1,
            console_deliveries: 200,
            latency_probes: 5,
            queued_events: 1_000,
            shaping_updates: 40,
            shaping_items: 5,
            shaping_spread: Duration::from_secs(1),
        }
    }
}

/// What every scenario shares.
pub struct Bench {
    pub plan: Plan,
    pub sink: sink::Sink,
    pub event: Event,
    pub python: Option<PathBuf>,
    pub lookout_bin: PathBuf,
    pub scratch: PathBuf,
}

/// The scenarios, in the order of docs/BENCHMARKS.md.
const SCENARIOS: &[&str] = &[
    "fanout",
    "throughput",
    "peer",
    "binding",
    "isolation",
    "cli",
    "memory",
    "serve",
    "console",
    "neighbours",
    "shaping",
];

fn main() {
    match std::env::var("LOOKOUT_BENCH_CHILD").as_deref() {
        Ok("serve") => return serve::queue_child_main(),
        Ok(kind) => return memory::child(kind),
        Err(_) => {}
    }
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let plan = if measuring {
        Plan::full()
    } else {
        Plan::smoke()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = root.join("target/bench");
    std::fs::create_dir_all(&scratch).expect("create target/bench");
    let bench = Bench {
        plan,
        sink: sink::Sink::start(1),
        event: common::event(),
        python: std::env::var_os("LOOKOUT_BENCH_PYTHON")
            .map(PathBuf::from)
            .filter(|_| measuring),
        // Cargo builds the binary for benches (release under `cargo bench`).
        lookout_bin: PathBuf::from(env!("CARGO_BIN_EXE_lookout")),
        scratch,
    };
    let only: Option<Vec<String>> = std::env::var("LOOKOUT_BENCH_ONLY")
        .ok()
        .map(|list| list.split(',').map(|s| s.trim().to_owned()).collect());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let workers = runtime.metrics().num_workers();
    let bench = std::sync::Arc::new(bench);
    let mut results = Map::new();
    for &name in SCENARIOS {
        if only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|o| o == name))
        {
            continue;
        }
        eprintln!("bench: {name}…");
        let started = Instant::now();
        let shared = bench.clone();
        // On a worker thread, like every task the engine spawns, so that Lookout and the
        // bare client it is compared with are driven alike.
        let task = runtime.spawn(async move { scenario(&shared, name).await });
        let result = runtime
            .block_on(task)
            .unwrap_or_else(|e| panic!("scenario {name} failed: {e}"));
        if measuring {
            eprintln!(
                "bench: {name} took {:.1}s: {result}",
                started.elapsed().as_secs_f64()
            );
        }
        results.insert(name.to_owned(), result);
    }
    if !measuring {
        eprintln!("bench smoke run passed (nothing timed; `make bench` measures)");
        return;
    }
    let out = std::env::var_os("LOOKOUT_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| bench.scratch.join("results.json"));
    let document = json!({
        "client_runtime_workers": workers,
        "sink_runtime_workers": 1,
        "sink_requests": bench.sink.received(),
        "results": Value::Object(results),
    });
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&document).unwrap() + "\n",
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    eprintln!("bench: results in {}", out.display());
}

async fn scenario(bench: &Bench, name: &str) -> Value {
    match name {
        "fanout" => fanout::run(bench).await,
        "throughput" => throughput::run(bench).await,
        "peer" => peer::run(bench).await,
        "binding" => binding::run(bench).await,
        "isolation" => isolation::run(bench).await,
        "cli" => {
            let (binary, runs, scratch) = (
                bench.lookout_bin.clone(),
                bench.plan.cli_runs,
                bench.scratch.clone(),
            );
            tokio::task::spawn_blocking(move || cli::run(&binary, runs, &scratch))
                .await
                .expect("cli bench")
        }
        "memory" => memory::run(bench).await,
        "serve" => {
            // The PostgreSQL variant builds on the SQLite one's parts; one figure in all.
            let mut figure = serve::run(bench).await;
            if figure.get("profiled").is_none() {
                figure["postgres"] = serve_pg::run(bench).await;
            }
            figure
        }
        "console" => console::run(bench).await,
        "neighbours" => neighbours::run(bench).await,
        "shaping" => shaping::run(bench).await,
        other => panic!("unknown scenario {other}"),
    }
}
