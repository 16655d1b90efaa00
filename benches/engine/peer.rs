//! Figure 3, peer: Apprise sending the same JSON notifications to the same sink. Apprise runs in
//! its own Python process (scripts/bench_apprise.py), driven through its Python API: one
//! `Apprise` object with every target, one `notify()` per round. Lookout does the same
//! rounds: one webhook with every target, one dispatch per round.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use lookout::{Engine, Instance};
use serde_json::{Value, json};

use crate::common;
use crate::stats::{median, round3, rounded};
use crate::{Bench, Plan};

pub async fn run(bench: &Bench) -> Value {
    let Some(python) = bench.python.clone() else {
        return json!({ "skipped": "LOOKOUT_BENCH_PYTHON is not set (no Apprise to run)" });
    };
    let Plan {
        targets,
        peer_repeats,
        peer_rounds_fast,
        peer_rounds_slow,
        ..
    } = bench.plan;
    let mut cases = Vec::new();
    for (latency, rounds) in [(0, peer_rounds_fast), (50, peer_rounds_slow)] {
        cases.push(case(bench, &python, targets, latency, rounds, peer_repeats).await);
    }
    json!({ "cases": cases })
}

async fn case(
    bench: &Bench,
    python: &Path,
    targets: usize,
    latency: u64,
    rounds: usize,
    repeats: usize,
) -> Value {
    let urls: Vec<String> = (0..targets).map(|i| bench.sink.url(latency, i)).collect();
    let engine = common::engine(common::settings());
    let instances = [common::webhook("peer", &urls)];
    let apprise_urls: Vec<String> = urls
        .iter()
        .map(|u| u.replacen("http://", "json://", 1))
        .collect();
    let notifications = rounds * targets;

    let mut lookout_rates = Vec::new();
    let mut apprise_rates = Vec::new();
    let mut ratios = Vec::new();
    let mut about = Value::Null;
    for _ in 0..repeats {
        // Apprise first: its process start and warm-up round are not timed.
        let (python, urls) = (python.to_owned(), apprise_urls.clone());
        let apprise = tokio::task::spawn_blocking(move || apprise(&python, rounds, &urls))
            .await
            .expect("apprise runner");
        let apprise_rate = notifications as f64 / apprise["seconds"].as_f64().expect("seconds");
        let lookout_rate =
            notifications as f64 / lookout_rounds(bench, &engine, &instances, rounds).await;
        apprise_rates.push(apprise_rate);
        lookout_rates.push(lookout_rate);
        ratios.push(lookout_rate / apprise_rate);
        about = apprise;
    }
    json!({
        "targets": targets,
        "latency_ms": latency,
        "rounds": rounds,
        "notifications": notifications,
        "repeats": repeats,
        "lookout_per_s": median(&lookout_rates).round(),
        "apprise_per_s": median(&apprise_rates).round(),
        "ratio": round3(median(&ratios)),
        "apprise": {
            "version": about["apprise"],
            "python": about["python"],
            "async_mode": about["async_mode"],
            "workers": about["workers"],
        },
        "samples": {
            "lookout_per_s": rounded(&lookout_rates),
            "apprise_per_s": rounded(&apprise_rates),
        },
    })
}

/// Lookout's rounds: one warm-up dispatch, then `rounds` timed ones; seconds taken.
pub async fn lookout_rounds(
    bench: &Bench,
    engine: &Engine,
    instances: &[Instance],
    rounds: usize,
) -> f64 {
    let expected = instances.iter().map(|i| i.options.list("urls").len()).sum();
    common::expect_delivered(&engine.dispatch_to(&bench.event, instances).await, expected);
    let started = Instant::now();
    for _ in 0..rounds {
        let report = engine.dispatch_to(&bench.event, instances).await;
        common::expect_delivered(&report, expected);
    }
    started.elapsed().as_secs_f64()
}

pub fn apprise(python: &Path, rounds: usize, urls: &[String]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_apprise.py");
    let body = Path::new(env!("CARGO_MANIFEST_DIR")).join("lookout/samples/item.json");
    let output = Command::new(python)
        .arg(script)
        .arg(rounds.to_string())
        .arg(body)
        .arg("Item created")
        .args(urls)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "apprise run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("apprise runner prints JSON")
}
