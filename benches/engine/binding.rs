//! Figure 3b, the Python binding: the same rounds as figure 3 (one webhook with every
//! target, one dispatch per round) through `lookout.Engine` from Python
//! (scripts/bench_binding.py, the package built in release into .venv-bench), against
//! Apprise and against the Rust library, interleaved in one run.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::peer::{apprise, lookout_rounds};
use crate::stats::{median, round3, rounded};
use crate::{Bench, common};

pub async fn run(bench: &Bench) -> Value {
    let Some(python) = bench.python.clone() else {
        return json!({ "skipped": "LOOKOUT_BENCH_PYTHON is not set (no Python to run)" });
    };
    let has_binding = Command::new(&python)
        .args(["-c", "import lookout, apprise"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_binding {
        return json!({ "skipped": "the lookout package is not installed in LOOKOUT_BENCH_PYTHON (scripts/python.sh --release)" });
    }
    let (targets, rounds, repeats) = (
        bench.plan.targets,
        bench.plan.binding_rounds,
        bench.plan.binding_repeats,
    );
    let apprise_rounds = bench.plan.peer_rounds_fast;
    let urls: Vec<String> = (0..targets).map(|i| bench.sink.url(0, i)).collect();
    let apprise_urls: Vec<String> = urls
        .iter()
        .map(|u| u.replacen("http://", "json://", 1))
        .collect();
    let engine = common::engine(common::settings());
    let instances = [common::webhook("peer", &urls)];
    let notifications = (rounds * targets) as f64;

    let (mut binding_rates, mut rust_rates, mut apprise_rates) = (vec![], vec![], vec![]);
    let (mut vs_rust, mut vs_apprise) = (vec![], vec![]);
    for _ in 0..repeats {
        let (py, urls_for_py) = (python.clone(), urls.clone());
        let binding = tokio::task::spawn_blocking(move || binding(&py, rounds, &urls_for_py))
            .await
            .expect("binding runner");
        let (py, urls_for_py) = (python.clone(), apprise_urls.clone());
        let peer = tokio::task::spawn_blocking(move || apprise(&py, apprise_rounds, &urls_for_py))
            .await
            .expect("apprise runner");
        let rust = notifications / lookout_rounds(bench, &engine, &instances, rounds).await;
        let binding = notifications / binding["seconds"].as_f64().expect("seconds");
        let peer = (apprise_rounds * targets) as f64 / peer["seconds"].as_f64().expect("seconds");
        binding_rates.push(binding);
        rust_rates.push(rust);
        apprise_rates.push(peer);
        vs_rust.push(binding / rust);
        vs_apprise.push(binding / peer);
    }
    json!({
        "targets": targets,
        "rounds": rounds,
        "notifications": rounds * targets,
        "repeats": repeats,
        "apprise_rounds": apprise_rounds,
        "binding_per_s": median(&binding_rates).round(),
        "rust_per_s": median(&rust_rates).round(),
        "apprise_per_s": median(&apprise_rates).round(),
        "binding_vs_rust": round3(median(&vs_rust)),
        "binding_vs_apprise": round3(median(&vs_apprise)),
        "samples": {
            "binding_per_s": rounded(&binding_rates),
            "rust_per_s": rounded(&rust_rates),
            "apprise_per_s": rounded(&apprise_rates),
        },
    })
}

fn binding(python: &Path, rounds: usize, urls: &[String]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(python)
        .arg(root.join("scripts/bench_binding.py"))
        .arg(rounds.to_string())
        .arg(root.join("lookout/samples/item.json"))
        .args(urls)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "binding run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("binding runner prints JSON")
}
