//! Figure 2, throughput: many deliveries to a sink that answers at once, Lookout's dispatch
//! against a bare reqwest loop making the same POSTs with the same concurrency. The bare
//! loop is the ceiling on this machine; the ratio is the engine's overhead.
//!
//! Each run sends `deliveries` with each side, in alternating blocks, so that both see
//! the machine in the same state however busy other processes make it. Besides wall
//! time, the process's CPU time per delivery is recorded: other load on the machine
//! stretches wall time but hardly CPU time, so it shows the engine's cost more steadily.

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream;
use lookout::{Engine, Event, Instance};
use serde_json::{Value, json};

use crate::common;
use crate::stats::{median, round3, rounded};
use crate::{Bench, Plan};

/// Blocks per run and side.
const BLOCKS: usize = 10;

struct Sides<'a> {
    engine: Engine,
    instances: [Instance; 1],
    client: reqwest::Client,
    url: String,
    body: Bytes,
    event: &'a Event,
    concurrency: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Lookout,
    Reqwest,
}

impl Sides<'_> {
    /// `n` deliveries by one side; (wall seconds, CPU seconds of the whole process).
    async fn run(&self, side: Side, n: usize) -> (f64, f64) {
        let cpu = process_cpu_seconds();
        let started = Instant::now();
        match side {
            Side::Lookout => {
                lookout_run(
                    &self.engine,
                    self.event,
                    &self.instances,
                    n,
                    self.concurrency,
                )
                .await
            }
            Side::Reqwest => {
                bare_run(&self.client, &self.url, &self.body, n, self.concurrency).await
            }
        }
        (started.elapsed().as_secs_f64(), process_cpu_seconds() - cpu)
    }
}

pub async fn run(bench: &Bench) -> Value {
    let Plan {
        deliveries,
        concurrency,
        throughput_runs: runs,
        ..
    } = bench.plan;
    let url = bench.sink.url(0, 0);
    let sides = Sides {
        engine: common::engine(common::settings()),
        instances: [common::webhook("throughput", std::slice::from_ref(&url))],
        client: common::bare_client(),
        body: common::body(&bench.event),
        url,
        event: &bench.event,
        concurrency,
    };

    // Warm-up: connections, allocator pools, the sink's buffers.
    let warm_up = (deliveries / 10).max(1);
    sides.run(Side::Lookout, warm_up).await;
    sides.run(Side::Reqwest, warm_up).await;

    // `LOOKOUT_BENCH_PROFILE=lookout` (or `reqwest`): that side alone, for `perf record`.
    if let Ok(side) = std::env::var("LOOKOUT_BENCH_PROFILE") {
        let side = match side.as_str() {
            "lookout" => Side::Lookout,
            "reqwest" => Side::Reqwest,
            other => panic!("LOOKOUT_BENCH_PROFILE: `{other}` is neither lookout nor reqwest"),
        };
        let (wall, _) = sides.run(side, deliveries * runs).await;
        let per_s = ((deliveries * runs) as f64 / wall).round();
        return json!({ "profiled": std::env::var("LOOKOUT_BENCH_PROFILE").ok(), "per_s": per_s });
    }

    let block = (deliveries / BLOCKS).max(1);
    let mut lookout_rates = Vec::new();
    let mut bare_rates = Vec::new();
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    let mut lookout_cpu_us = Vec::new();
    let mut bare_cpu_us = Vec::new();
    for run in 0..runs {
        let mut wall = [0.0; 2];
        let mut cpu = [0.0; 2];
        let mut sent = 0;
        for b in 0..BLOCKS {
            let n = block.min(deliveries - sent).max(1);
            // Alternate which side goes first in each block.
            let order = if (run + b) % 2 == 0 {
                [Side::Lookout, Side::Reqwest]
            } else {
                [Side::Reqwest, Side::Lookout]
            };
            for side in order {
                let (w, c) = sides.run(side, n).await;
                let i = usize::from(side == Side::Reqwest);
                wall[i] += w;
                cpu[i] += c;
            }
            sent += n;
        }
        let (lookout, bare) = (sent as f64 / wall[0], sent as f64 / wall[1]);
        lookout_rates.push(lookout);
        bare_rates.push(bare);
        ratios.push(lookout / bare);
        lookout_cpu_us.push(cpu[0] / sent as f64 * 1e6);
        bare_cpu_us.push(cpu[1] / sent as f64 * 1e6);
        cpu_ratios.push(cpu[1] / cpu[0]);
    }
    json!({
        "deliveries": deliveries,
        "concurrency": concurrency,
        "runs": runs,
        "blocks": BLOCKS,
        "lookout_per_s": median(&lookout_rates).round(),
        "reqwest_per_s": median(&bare_rates).round(),
        "ratio": round3(median(&ratios)),
        "lookout_cpu_us_per_delivery": round3(median(&lookout_cpu_us)),
        "reqwest_cpu_us_per_delivery": round3(median(&bare_cpu_us)),
        "cpu_ratio": round3(median(&cpu_ratios)),
        "samples": {
            "lookout_per_s": rounded(&lookout_rates),
            "reqwest_per_s": rounded(&bare_rates),
            "ratio": rounded(&ratios),
            "cpu_ratio": rounded(&cpu_ratios),
        },
    })
}

/// `n` events, each dispatched to `instances`, `concurrency` at a time.
pub async fn lookout_run(
    engine: &Engine,
    event: &Event,
    instances: &[Instance],
    n: usize,
    concurrency: usize,
) {
    let delivered = stream::iter(0..n)
        .map(|_| engine.dispatch_to(event, instances))
        .buffer_unordered(concurrency)
        .fold(
            0,
            |sum, report| async move { sum + common::delivered(&report) },
        )
        .await;
    assert_eq!(delivered, n * instances.len(), "every dispatch delivered");
}

/// `n` bare POSTs, `concurrency` at a time.
pub async fn bare_run(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    n: usize,
    concurrency: usize,
) {
    stream::iter(0..n)
        .map(|_| common::bare_post(client, url, body.clone()))
        .buffer_unordered(concurrency)
        .for_each(|()| async {})
        .await;
}

/// User + system CPU time of this process so far, all threads (the sink's included),
/// from /proc/self/stat in clock ticks of 1/100 s (Linux's fixed `USER_HZ`).
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    ticks as f64 / 100.0
}
