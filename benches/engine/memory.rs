//! Figure 6, memory: the peak resident memory of a process holding N deliveries in flight. The
//! bench starts itself again as a child (`LOOKOUT_BENCH_CHILD`), so that the sink, which
//! holds every request before answering, is not counted. The child builds its runtime
//! the way the `lookout` binary does, dispatches N events at once and reports `VmHWM`
//! from /proc/self/status. A bare reqwest child holding the same N requests is the floor.

use std::process::Command;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::common;
use crate::{Bench, Plan};

pub async fn run(bench: &Bench) -> Value {
    let Plan {
        in_flight,
        memory_hold_ms,
        ..
    } = bench.plan;
    let mut children = serde_json::Map::new();
    for kind in ["lookout", "reqwest"] {
        bench.sink.reset_max_in_flight();
        let url = bench.sink.url(memory_hold_ms, 0);
        let report = tokio::task::spawn_blocking(move || child_process(kind, &url, in_flight))
            .await
            .expect("memory child");
        let held = bench.sink.max_in_flight();
        assert!(
            held >= in_flight as u64,
            "only {held} of {in_flight} requests were in flight at once"
        );
        let mut report = report;
        report["sink_held_at_once"] = json!(held);
        children.insert(kind.to_owned(), report);
    }
    json!({
        "in_flight": in_flight,
        "hold_ms": memory_hold_ms,
        "children": children,
    })
}

fn child_process(kind: &str, url: &str, in_flight: usize) -> Value {
    let output = Command::new(std::env::current_exe().expect("current exe"))
        .env("LOOKOUT_BENCH_CHILD", kind)
        .env("LOOKOUT_BENCH_URL", url)
        .env("LOOKOUT_BENCH_IN_FLIGHT", in_flight.to_string())
        .output()
        .expect("start the memory child");
    assert!(
        output.status.success(),
        "memory child ({kind}) failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the memory child prints JSON")
}

/// The child's side: send, hold, report.
pub fn child(kind: &str) {
    let url = std::env::var("LOOKOUT_BENCH_URL").expect("LOOKOUT_BENCH_URL");
    let n: usize = std::env::var("LOOKOUT_BENCH_IN_FLIGHT")
        .expect("LOOKOUT_BENCH_IN_FLIGHT")
        .parse()
        .expect("a number");
    // As the `lookout` binary builds it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let event = common::event();
    let baseline_kb = status_kb("VmRSS");
    runtime.block_on(async {
        match kind {
            "lookout" => {
                let engine = common::engine(common::settings());
                let instances = [common::webhook("memory", std::slice::from_ref(&url))];
                let reports =
                    join_all((0..n).map(|_| engine.dispatch_to(&event, &instances))).await;
                let delivered: usize = reports.iter().map(common::delivered).sum();
                assert_eq!(delivered, n, "every delivery arrived");
            }
            "reqwest" => {
                let client = common::bare_client();
                let body = common::body(&event);
                join_all((0..n).map(|_| common::bare_post(&client, &url, body.clone()))).await;
            }
            other => panic!("unknown memory child {other}"),
        }
    });
    let report = json!({
        "baseline_kb": baseline_kb,
        "peak_kb": status_kb("VmHWM"),
    });
    println!("{report}");
}

/// A `kB` line of /proc/self/status.
pub fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}
