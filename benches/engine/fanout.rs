//! Figure 1, fan-out: one event to N targets behind a slow sink. Lookout sends them all at once,
//! so the whole should take about as long as one delivery; the original sent them one
//! after the other, N times as long.

use std::time::Instant;

use bytes::Bytes;
use futures::future::join_all;
use lookout::{Engine, Event, Instance};
use serde_json::{Value, json};

use crate::common;
use crate::stats::{median, ms, round3, rounded};
use crate::{Bench, Plan};

pub async fn run(bench: &Bench) -> Value {
    let Plan {
        targets,
        fanout_latency_ms: latency,
        fanout_rounds: rounds,
        sequential_runs,
        ..
    } = bench.plan;
    let urls: Vec<String> = (0..targets).map(|i| bench.sink.url(latency, i)).collect();
    let engine = common::engine(common::settings());
    let one = [common::webhook("one", &urls[..1])];
    let one_with_many_urls = [common::webhook("fanout", &urls)];
    let many = common::webhooks(&urls);
    let client = common::bare_client();
    let body = common::body(&bench.event);
    let event = &bench.event;

    // Warm-up: every client opens the connections it will then reuse.
    dispatch(&engine, event, &many, targets).await;
    dispatch(&engine, event, &one_with_many_urls, targets).await;
    concurrent(&client, &urls, &body).await;

    let mut single = Vec::new();
    let mut with_urls = Vec::new();
    let mut with_instances = Vec::new();
    let mut bare_single = Vec::new();
    let mut bare_many = Vec::new();
    // Interleaved, so that a burst of load on the machine hits every variant alike.
    for _ in 0..rounds {
        single.push(dispatch(&engine, event, &one, 1).await);
        with_urls.push(dispatch(&engine, event, &one_with_many_urls, targets).await);
        with_instances.push(dispatch(&engine, event, &many, targets).await);
        bare_single.push(concurrent(&client, &urls[..1], &body).await);
        bare_many.push(concurrent(&client, &urls, &body).await);
    }
    let mut sequential_ms = Vec::new();
    for _ in 0..sequential_runs {
        sequential_ms.push(sequential(&client, &urls, &body).await);
    }

    let ratios = |many: &[f64], one: &[f64]| -> Vec<f64> {
        many.iter().zip(one).map(|(m, o)| m / o).collect()
    };
    json!({
        "targets": targets,
        "latency_ms": latency,
        "rounds": rounds,
        "single_ms": round3(median(&single)),
        "lookout_urls_ms": round3(median(&with_urls)),
        "lookout_instances_ms": round3(median(&with_instances)),
        "reqwest_single_ms": round3(median(&bare_single)),
        "reqwest_concurrent_ms": round3(median(&bare_many)),
        "sequential_ms": round3(median(&sequential_ms)),
        "ratio_urls": round3(median(&ratios(&with_urls, &single))),
        "ratio_instances": round3(median(&ratios(&with_instances, &single))),
        "ratio_reqwest": round3(median(&ratios(&bare_many, &bare_single))),
        "ratio_sequential": round3(median(&sequential_ms) / median(&single)),
        "samples_ms": {
            "single": rounded(&single),
            "lookout_urls": rounded(&with_urls),
            "lookout_instances": rounded(&with_instances),
            "reqwest_single": rounded(&bare_single),
            "reqwest_concurrent": rounded(&bare_many),
            "sequential": rounded(&sequential_ms),
        },
    })
}

/// One `Engine::dispatch_to`, in milliseconds.
async fn dispatch(engine: &Engine, event: &Event, instances: &[Instance], expected: usize) -> f64 {
    let started = Instant::now();
    let report = engine.dispatch_to(event, instances).await;
    let took = ms(started.elapsed());
    common::expect_delivered(&report, expected);
    took
}

/// Bare reqwest, every POST at once.
async fn concurrent(client: &reqwest::Client, urls: &[String], body: &Bytes) -> f64 {
    let started = Instant::now();
    join_all(
        urls.iter()
            .map(|url| common::bare_post(client, url, body.clone())),
    )
    .await;
    ms(started.elapsed())
}

/// The original's model: one POST after the other.
async fn sequential(client: &reqwest::Client, urls: &[String], body: &Bytes) -> f64 {
    let started = Instant::now();
    for url in urls {
        common::bare_post(client, url, body.clone()).await;
    }
    ms(started.elapsed())
}
