//! Figure 4, isolation: one target that never answers among N. Events arrive at a steady pace
//! (a new one every `isolation_spacing`, whether or not the last is done), so unanswered
//! requests pile up until they time out; the other targets' latency must not notice.
//! Measured both ways a user can list N targets: one webhook with N URLs, N webhooks.

use std::sync::Arc;

use lookout::{Engine, Event, Instance, Outcome, Settings};
use serde_json::{Value, json};

use crate::common;
use crate::stats::{median, percentile, round3, rounded, spread};
use crate::{Bench, Plan};

pub async fn run(bench: &Bench) -> Value {
    let Plan {
        targets,
        fanout_latency_ms: latency,
        isolation_timeout: timeout,
        ..
    } = bench.plan;
    let settings = Settings {
        request_timeout: timeout,
        deadline: timeout * 2,
        ..common::settings()
    };
    let engine = common::engine(settings);
    let healthy: Vec<String> = (0..targets).map(|i| bench.sink.url(latency, i)).collect();
    // The last target never answers; the first N-1 are measured in both runs.
    let mut with_hang = healthy.clone();
    with_hang[targets - 1] = bench.sink.hanging_url(targets - 1);

    let layouts: [(&str, Vec<Instance>, Vec<Instance>); 2] = [
        (
            "one webhook with all URLs",
            vec![common::webhook("all", &healthy)],
            vec![common::webhook("all", &with_hang)],
        ),
        (
            "one webhook per URL",
            common::webhooks(&healthy),
            common::webhooks(&with_hang),
        ),
    ];
    let mut results = Vec::new();
    for (layout, without, with) in layouts {
        results.push(compare(bench, &engine, layout, without, with).await);
    }
    json!({
        "targets": targets,
        "latency_ms": latency,
        "request_timeout_ms": timeout.as_millis() as u64,
        "rounds": bench.plan.isolation_rounds,
        "spacing_ms": bench.plan.isolation_spacing.as_millis() as u64,
        "layouts": results,
    })
}

async fn compare(
    bench: &Bench,
    engine: &Engine,
    layout: &str,
    without: Vec<Instance>,
    with: Vec<Instance>,
) -> Value {
    let (without, with) = (Arc::new(without), Arc::new(with));
    let measured = bench.plan.targets - 1;
    let mut runs: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for pair in 0..bench.plan.isolation_pairs {
        for step in 0..2 {
            // Alternate the order: without first, then with first.
            let hanging = (pair + step) % 2 == 1;
            let instances = if hanging { &with } else { &without };
            let latencies = open_loop(bench, engine, instances, measured, hanging).await;
            runs[usize::from(hanging)]
                .push((percentile(&latencies, 50.0), percentile(&latencies, 99.0)));
        }
    }
    let [without_runs, with_runs] = runs;
    let p50 = |runs: &[(f64, f64)]| runs.iter().map(|r| r.0).collect::<Vec<_>>();
    let p99 = |runs: &[(f64, f64)]| runs.iter().map(|r| r.1).collect::<Vec<_>>();
    json!({
        "layout": layout,
        "samples_per_run": measured * bench.plan.isolation_rounds,
        "p50_without_ms": round3(median(&p50(&without_runs))),
        "p50_with_ms": round3(median(&p50(&with_runs))),
        "p99_without_ms": round3(median(&p99(&without_runs))),
        "p99_with_ms": round3(median(&p99(&with_runs))),
        // How much the same measurement moves from run to run.
        "noise_p50_ms": round3(spread(&p50(&without_runs)).max(spread(&p50(&with_runs)))),
        "noise_p99_ms": round3(spread(&p99(&without_runs)).max(spread(&p99(&with_runs)))),
        "runs": {
            "p50_without_ms": rounded(&p50(&without_runs)),
            "p50_with_ms": rounded(&p50(&with_runs)),
            "p99_without_ms": rounded(&p99(&without_runs)),
            "p99_with_ms": rounded(&p99(&with_runs)),
        },
    })
}

/// One run: an event every `isolation_spacing`; returns the latencies (ms) of the first
/// `measured` targets, which must all be delivered. The hanging target, when there is
/// one, must fail every time.
async fn open_loop(
    bench: &Bench,
    engine: &Engine,
    instances: &Arc<Vec<Instance>>,
    measured: usize,
    hanging: bool,
) -> Vec<f64> {
    let mut ticker = tokio::time::interval(bench.plan.isolation_spacing);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = Vec::new();
    for _ in 0..bench.plan.isolation_rounds {
        ticker.tick().await;
        let (engine, event, instances): (Engine, Event, _) =
            (engine.clone(), bench.event.clone(), instances.clone());
        tasks.push(tokio::spawn(async move {
            engine.dispatch_to(&event, &instances).await
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        let report = task.await.expect("dispatch task");
        let (others, last) = report.results.split_at(measured);
        for row in others {
            assert!(
                matches!(row.delivery.outcome, Outcome::Delivered { .. }),
                "a healthy target failed: {:?}",
                row.delivery.outcome
            );
            latencies.push(crate::stats::ms(row.delivery.duration));
        }
        let last_failed = last.iter().all(|r| r.delivery.outcome.is_failure());
        assert_eq!(last_failed, hanging, "the hanging target's row: {last:?}");
    }
    latencies
}
