//! The counters `lookout serve` exposes at `GET /metrics`, in the Prometheus text
//! format (version 0.0.4). Counters live in the process (they restart at zero, which
//! Prometheus handles); the queue depth is read from the store at each scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the delivery latency histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bound (not yet cumulative).
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What a finished attempt adds to the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counter {
    /// A delivery reached every target.
    Delivered,
    /// One request failed.
    Failed,
    /// A delivery was scheduled for another attempt.
    Retried,
    /// A delivery was dead-lettered.
    Dead,
    /// One request failed because of this machine (file descriptors, memory).
    Local,
    /// One request's destination asked for a wait (`429`, `Retry-After`).
    Throttled,
}

impl Counter {
    const ALL: [Counter; 6] = [
        Counter::Delivered,
        Counter::Failed,
        Counter::Retried,
        Counter::Dead,
        Counter::Local,
        Counter::Throttled,
    ];
}

impl Counter {
    fn name(self) -> &'static str {
        match self {
            Counter::Delivered => "lookout_deliveries_delivered_total",
            Counter::Failed => "lookout_requests_failed_total",
            Counter::Retried => "lookout_deliveries_retried_total",
            Counter::Dead => "lookout_deliveries_dead_total",
            Counter::Local => "lookout_local_errors_total",
            Counter::Throttled => "lookout_requests_throttled_total",
        }
    }
    fn help(self) -> &'static str {
        match self {
            Counter::Delivered => "Deliveries that reached every target.",
            Counter::Failed => "Requests that failed (each may be retried).",
            Counter::Retried => "Deliveries scheduled for another attempt.",
            Counter::Dead => "Deliveries dead-lettered.",
            Counter::Local => {
                "Requests that failed for want of this machine's resources (file descriptors, \
                 memory): retried soon, not counted against the target."
            }
            Counter::Throttled => {
                "Requests whose destination asked for a wait (429, Retry-After): retried then, \
                 not counted against the target."
            }
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    accepted: Mutex<u64>,
    /// Intake transactions, and the events handed to them (group commit).
    commits: Mutex<(u64, u64)>,
    counters: Mutex<BTreeMap<(Counter, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Alerts sent to products' alerts services, by kind (`disabled`, `dead`).
    alerts: Mutex<BTreeMap<&'static str, u64>>,
    targets_disabled: Mutex<u64>,
    /// Connections and requests refused by a limit of the request path, by reason.
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Wrong API tokens and console sign-ins, by door (`api`, `console`).
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn accepted(&self) {
        *lock(&self.accepted) += 1;
    }

    /// One intake transaction of `events` events was attempted.
    pub fn committed(&self, events: usize) {
        let mut commits = lock(&self.commits);
        commits.0 += 1;
        commits.1 += events as u64;
    }

    pub fn count(&self, counter: Counter, service: &str) {
        *lock(&self.counters)
            .entry((counter, service.to_owned()))
            .or_default() += 1;
    }

    /// An alert went to a product's alerts service.
    pub fn alerted(&self, kind: &'static str) {
        *lock(&self.alerts).entry(kind).or_default() += 1;
    }

    /// A target was disabled (a "gone" answer, or failing for too long).
    pub fn target_disabled(&self) {
        *lock(&self.targets_disabled) += 1;
    }

    /// A connection or request was refused by a limit of the request path
    /// (`connections_per_client`, `requests_per_client`, `previews`).
    pub fn refused(&self, reason: &'static str) {
        *lock(&self.refused).entry(reason).or_default() += 1;
    }

    /// A wrong token was given at `door` (`api`, `console`).
    pub fn auth_failed(&self, door: &'static str) {
        *lock(&self.auth_failures).entry(door).or_default() += 1;
    }

    /// One request's time, from sending to the last byte of the answer.
    pub fn observe(&self, service: &str, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut all = lock(&self.latency);
        let histogram = all.entry(service.to_owned()).or_default();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.counts[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Everything in the Prometheus text format; `queue_depth` comes from the store.
    pub fn render(&self, queue_depth: u64) -> String {
        let mut out = String::new();
        let accepted = *lock(&self.accepted);
        family(
            &mut out,
            "lookout_events_accepted_total",
            "counter",
            "Events accepted (answered 202).",
        );
        let _ = writeln!(out, "lookout_events_accepted_total {accepted}");
        let (commits, committed) = *lock(&self.commits);
        family(
            &mut out,
            "lookout_intake_commits_total",
            "counter",
            "Intake transactions (each stores every event POSTed meanwhile: group commit).",
        );
        let _ = writeln!(out, "lookout_intake_commits_total {commits}");
        family(
            &mut out,
            "lookout_intake_committed_events_total",
            "counter",
            "Events handed to intake transactions (stored, repeated or failed).",
        );
        let _ = writeln!(out, "lookout_intake_committed_events_total {committed}");

        let counters = lock(&self.counters);
        for counter in Counter::ALL {
            family(&mut out, counter.name(), "counter", counter.help());
            for ((_, service), value) in counters.iter().filter(|((c, _), _)| *c == counter) {
                let _ = writeln!(
                    out,
                    "{}{{service=\"{}\"}} {value}",
                    counter.name(),
                    label(service)
                );
            }
        }
        drop(counters);

        family(
            &mut out,
            "lookout_queue_depth",
            "gauge",
            "Deliveries waiting to be sent (pending or failed).",
        );
        let _ = writeln!(out, "lookout_queue_depth {queue_depth}");

        let disabled = *lock(&self.targets_disabled);
        family(
            &mut out,
            "lookout_targets_disabled_total",
            "counter",
            "Targets disabled: a \"gone\" answer, or failing for longer than disable_after.",
        );
        let _ = writeln!(out, "lookout_targets_disabled_total {disabled}");
        family(
            &mut out,
            "lookout_alerts_total",
            "counter",
            "Alerts sent to products' alerts services, by kind.",
        );
        for (kind, count) in lock(&self.alerts).iter() {
            let _ = writeln!(out, "lookout_alerts_total{{kind=\"{kind}\"}} {count}");
        }
        family(
            &mut out,
            "lookout_refused_total",
            "counter",
            "Connections and requests refused by a limit per client or on previews, by reason.",
        );
        for (reason, count) in lock(&self.refused).iter() {
            let _ = writeln!(out, "lookout_refused_total{{reason=\"{reason}\"}} {count}");
        }
        family(
            &mut out,
            "lookout_auth_failures_total",
            "counter",
            "Wrong API tokens and console sign-ins, by door.",
        );
        for (door, count) in lock(&self.auth_failures).iter() {
            let _ = writeln!(
                out,
                "lookout_auth_failures_total{{door=\"{door}\"}} {count}"
            );
        }

        let name = "lookout_delivery_duration_seconds";
        family(&mut out, name, "histogram", "Time of one delivery request.");
        for (service, histogram) in lock(&self.latency).iter() {
            let service = label(service);
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{service=\"{service}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{service=\"{service}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "{name}_sum{{service=\"{service}\"}} {}", histogram.sum);
            let _ = writeln!(
                out,
                "{name}_count{{service=\"{service}\"}} {}",
                histogram.count
            );
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, escaped as the text format asks.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::new();
        metrics.accepted();
        metrics.accepted();
        metrics.count(Counter::Delivered, "webhook");
        metrics.count(Counter::Failed, "slack");
        metrics.observe("webhook", Duration::from_millis(20));
        metrics.observe("webhook", Duration::from_secs(30));
        metrics.target_disabled();
        metrics.alerted("disabled");
        metrics.refused("previews");
        metrics.refused("previews");
        let text = metrics.render(7);
        for line in [
            "# TYPE lookout_events_accepted_total counter",
            "lookout_events_accepted_total 2",
            "lookout_deliveries_delivered_total{service=\"webhook\"} 1",
            "lookout_requests_failed_total{service=\"slack\"} 1",
            "lookout_queue_depth 7",
            "lookout_targets_disabled_total 1",
            "lookout_alerts_total{kind=\"disabled\"} 1",
            "lookout_refused_total{reason=\"previews\"} 2",
            "# TYPE lookout_delivery_duration_seconds histogram",
            "lookout_delivery_duration_seconds_bucket{service=\"webhook\",le=\"0.01\"} 0",
            "lookout_delivery_duration_seconds_bucket{service=\"webhook\",le=\"0.025\"} 1",
            "lookout_delivery_duration_seconds_bucket{service=\"webhook\",le=\"10\"} 1",
            "lookout_delivery_duration_seconds_bucket{service=\"webhook\",le=\"+Inf\"} 2",
            "lookout_delivery_duration_seconds_count{service=\"webhook\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
    }
}
