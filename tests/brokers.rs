//! The broker services against real brokers: RabbitMQ, Mosquitto, NATS (JetStream) and
//! Redis, the Debian packages `scripts/test-deps.sh` installs, each started once by this
//! test binary on free loopback ports and stopped (its folder removed) when it ends.
//!
//! Per broker: what a consumer (using the same client crate) receives is the payload,
//! with the delivery id and the event in its headers, properties or fields, routed as
//! configured; a broker killed mid-run fails the delivery as worth another try, and once
//! it is started again on the same port the retry delivers, exactly once; the broker
//! password (a canary) never shows in a report. The SSRF guard refuses a blocked broker
//! host before connecting.
//!
//! This binary has its own `main` (`harness = false`): the brokers are started once and
//! stopped at the end, which libtest's statics would never do. RabbitMQ, slow to boot
//! (10–15 s), boots in the background while the other brokers' tests run. The summary
//! line is libtest's, so `scripts/test.sh` counts these tests too.

mod common;

#[path = "brokers/amqp.rs"]
mod amqp;
#[path = "brokers/mqtt.rs"]
mod mqtt;
#[path = "brokers/nats.rs"]
mod nats;
#[path = "brokers/redis.rs"]
mod redis;
#[path = "brokers/servers.rs"]
mod servers;

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout::{Delivery, Event, Instance, Outcome, Report, Transport};
use serde_json::Value;

/// The password every broker is given: it must never show in a report.
pub const CANARY: &str = "Brk-S3cretQwZ9-canary";

/// One test: its name, and the future it runs.
type TestFn = fn() -> Pin<Box<dyn Future<Output = ()>>>;

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // RabbitMQ takes 10–15 s to boot: it boots while the other brokers' tests run.
    let mut rabbit_boot = amqp::TESTS
        .iter()
        .any(|(name, _)| wanted(name))
        .then(|| std::thread::spawn(servers::rabbitmq));
    let mut tally = Tally::default();
    let groups: [(&str, &[(&str, TestFn)]); 5] = [
        ("guard", GUARD_TESTS),
        ("mqtt", mqtt::TESTS),
        ("nats", nats::TESTS),
        ("redis", redis::TESTS),
        ("rabbitmq", amqp::TESTS),
    ];
    for (group, tests) in groups {
        let tests: Vec<_> = tests.iter().filter(|(name, _)| wanted(name)).collect();
        if tests.is_empty() {
            continue;
        }
        if group == "rabbitmq"
            && let Some(Err(_)) = rabbit_boot.take().map(|boot| boot.join())
        {
            tally
                .failed
                .extend(tests.iter().map(|(name, _)| name.to_string()));
            continue;
        }
        for (name, test) in tests {
            tally.run(&runtime, name, *test);
        }
    }
    servers::stop_all();
    tally.finish(started.elapsed());
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn run(&mut self, runtime: &tokio::runtime::Runtime, name: &str, test: TestFn) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(test())));
        match outcome {
            Ok(()) => {
                println!("test {name} ... ok");
                self.passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                self.failed.push(name.to_owned());
            }
        }
    }

    fn finish(self, took: Duration) {
        let verdict = if self.failed.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        for name in &self.failed {
            println!("failed: {name}");
        }
        println!(
            "\ntest result: {verdict}. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
            self.passed,
            self.failed.len(),
            took.as_secs_f64()
        );
        std::process::exit(if self.failed.is_empty() { 0 } else { 101 });
    }
}

/// A configured instance of `service` with these options.
pub fn instance(service: &str, options: Value) -> Instance {
    Instance::new(service, service, options.as_object().unwrap())
        .unwrap_or_else(|problems| panic!("{service}: options rejected: {problems:?}"))
}

/// Sends `fixture` to `service` as `lookout send` does (retrying within the budget).
pub async fn send(service: &str, options: Value, fixture: &str) -> Report {
    let json = lookout_testkit::fixture_json(fixture);
    lookout_testkit::dispatch_one(service, options, &json).await
}

/// One try, as the durable worker of `lookout serve` makes it for one claim, with a
/// given delivery id (the worker keeps it across claims).
pub async fn one_try(service: &str, options: Value, fixture: &str, id: &str) -> Delivery {
    let event = Arc::new(lookout_testkit::fixture(fixture));
    let transport = Transport::new(lookout_testkit::settings())
        .unwrap()
        .one_try(HashSet::new());
    let instance = instance(service, options);
    let mut rows =
        lookout::dispatch::run_service(&instance, &event, id.to_owned(), &transport).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.remove(0)
}

/// The one row of `report`, which must say delivered, with the canary nowhere.
pub fn delivered(report: &Report) -> &Delivery {
    lookout_testkit::assert_hidden(report, CANARY);
    assert_eq!(report.results.len(), 1, "{report:?}");
    let row = &report.results[0].delivery;
    assert_eq!(row.outcome, Outcome::Delivered { status: 0 }, "{report:?}");
    row
}

/// Asserts that `row` failed in a way another try could mend, without the canary.
pub fn failed_retryable(row: &Delivery) {
    assert!(
        matches!(row.outcome, Outcome::Failed { .. }),
        "expected a failure: {row:?}"
    );
    assert!(row.retry.is_retryable(), "{row:?}");
    assert!(!format!("{row:?}").contains(CANARY), "{row:?}");
}

/// The fixture's JSON text, as the product sent it.
pub fn payload(fixture: &str) -> String {
    lookout_testkit::fixture_json(fixture)
}

/// The event of a fixture.
pub fn event(fixture: &str) -> Event {
    lookout_testkit::fixture(fixture)
}

const GUARD_TESTS: &[(&str, TestFn)] =
    &[("blocked_broker_hosts_are_refused_before_connecting", || {
        Box::pin(blocked_broker_hosts_are_refused_before_connecting())
    })];

/// Every broker service, its host a blocked literal: refused at once, never tried again.
async fn blocked_broker_hosts_are_refused_before_connecting() {
    let urls = [
        ("rabbitmq", "amqp://u:p@169.254.169.254:5672/%2f"),
        ("mqtt", "mqtt://u:p@169.254.169.254:1883"),
        ("nats", "nats://u:p@169.254.169.254:4222"),
        ("redis", "redis://:p@169.254.169.254:6379/0"),
    ];
    for (service, url) in urls {
        let options = serde_json::json!({ "url": url });
        let report = send(service, options, "item").await;
        let row = &report.results[0].delivery;
        match &row.outcome {
            Outcome::Failed { reason, .. } => assert!(
                reason.starts_with("blocked: 169.254.169.254 is a link-local address"),
                "{service}: {reason}"
            ),
            other => panic!("{service}: expected a refusal, got {other:?}"),
        }
        assert_eq!(row.attempts, 1, "{service}: a refusal is not tried again");
        assert!(
            row.duration < Duration::from_millis(500),
            "{service}: {row:?}"
        );
    }
}
