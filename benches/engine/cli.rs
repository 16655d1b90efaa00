//! Figure 5, CLI overhead: `lookout send --dry-run` on a fixture, the whole process from spawn
//! to exit, against `lookout --version` (process start alone) as the floor.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

use crate::stats::{median, ms, percentile, round3};

pub fn run(binary: &Path, runs: usize, scratch: &Path) -> Value {
    let config = scratch.join("cli-config.toml");
    std::fs::write(
        &config,
        "[services.webhook]\nurls = [\"https://hooks.example.com/sprintly\"]\n",
    )
    .expect("write the CLI bench config");
    let payload = Path::new(env!("CARGO_MANIFEST_DIR")).join("lookout/samples/item.json");
    let dry_run: Vec<String> = vec![
        "send".into(),
        "--dry-run".into(),
        "--payload".into(),
        payload.display().to_string(),
        "--config".into(),
        config.display().to_string(),
    ];
    let version = vec!["--version".to_owned()];

    // The dry run must really print the request, or we time an error message.
    let shown = Command::new(binary)
        .args(&dry_run)
        .output()
        .expect("run lookout");
    assert!(
        shown.status.success() && String::from_utf8_lossy(&shown.stdout).contains("POST"),
        "lookout send --dry-run did not print the request: {}",
        String::from_utf8_lossy(&shown.stderr)
    );

    for _ in 0..3 {
        time_once(binary, &dry_run);
        time_once(binary, &version);
    }
    let mut dry = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..runs {
        dry.push(time_once(binary, &dry_run));
        floor.push(time_once(binary, &version));
    }
    json!({
        "command": "lookout send --dry-run --payload lookout/samples/item.json --config cli-config.toml",
        "runs": runs,
        "dry_run_ms": round3(median(&dry)),
        "dry_run_p90_ms": round3(percentile(&dry, 90.0)),
        "dry_run_min_ms": round3(percentile(&dry, 0.0)),
        "version_ms": round3(median(&floor)),
    })
}

/// One whole process, spawn to exit, in milliseconds.
fn time_once(binary: &Path, args: &[String]) -> f64 {
    let started = Instant::now();
    let status = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run lookout");
    let took = ms(started.elapsed());
    assert!(status.success(), "lookout {args:?} failed: {status}");
    took
}
