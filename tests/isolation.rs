//! One slow, failing or panicking service never delays or breaks another. These test
//! services register themselves into this test binary only.

mod common;

use std::time::{Duration, Instant};

use lookout::{BuildError, Engine, Instance, Job, Outcome, Outgoing, Schema, Service, Settings};
use lookout_testkit::CaptureServer;
use serde_json::{Map, json};

mod panics {
    use super::*;
    lookout::service! {
        /// Panics
        ///
        /// A test service whose build panics.
        pub struct Panics;

        category: Webhook,
        events: &["*"],
        limits: lookout::Limits::none("a test service"),
        schema: Schema::new(&[]),
        example: "",
    }
    impl Service for Panics {
        fn build(&self, _: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
            panic!("deliberate panic in a test service")
        }
    }
}

mod sleeps {
    use super::*;
    lookout::service! {
        /// Sleeps
        ///
        /// A test service whose send never finishes.
        pub struct Sleeps;

        category: Webhook,
        events: &["*"],
        limits: lookout::Limits::none("a test service"),
        schema: Schema::new(&[]),
        example: "",
    }
    #[lookout::async_trait]
    impl Service for Sleeps {
        fn build(&self, _: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
            Ok(Vec::new())
        }
        async fn send(&self, _: &Job<'_>, _: &lookout::Transport) -> Vec<lookout::Delivery> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Vec::new()
        }
    }
}

fn instance(name: &str, service: &str, options: serde_json::Value) -> Instance {
    let options: Map<String, serde_json::Value> = options.as_object().cloned().unwrap_or_default();
    Instance::new(name, service, &options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_hangs_stay_in_their_own_rows() {
    let server = CaptureServer::start();
    let deadline = Duration::from_millis(800);
    let engine = Engine::with_settings(Settings {
        deadline,
        ..common::test_settings()
    })
    .unwrap();
    let instances = [
        instance(
            "before",
            "webhook",
            json!({"urls": [format!("{}/before", server.url())]}),
        ),
        instance("panics", "panics", json!({})),
        instance("sleeps", "sleeps", json!({})),
        instance(
            "after",
            "webhook",
            json!({"urls": [format!("{}/after", server.url())]}),
        ),
    ];
    let started = Instant::now();
    let report = engine
        .dispatch_to(&common::fixture("item"), &instances)
        .await;
    let took = started.elapsed();

    let rows: Vec<(&str, &Outcome)> = report
        .results
        .iter()
        .map(|r| (r.instance.as_str(), &r.delivery.outcome))
        .collect();
    assert!(
        matches!(rows[0], ("before", Outcome::Delivered { status: 200 })),
        "{rows:?}"
    );
    assert!(
        matches!(rows[1], ("panics", Outcome::Failed { reason, .. }) if reason.contains("service panicked: deliberate panic")),
        "{rows:?}"
    );
    assert!(
        matches!(rows[2], ("sleeps", Outcome::Failed { reason, .. }) if reason.contains("deadline of 800ms exceeded")),
        "{rows:?}"
    );
    assert!(
        matches!(rows[3], ("after", Outcome::Delivered { status: 200 })),
        "{rows:?}"
    );
    // The fast services answered long before the deadline; the whole dispatch ends at it.
    for fast in [&report.results[0], &report.results[3]] {
        assert!(fast.delivery.duration < deadline, "{fast:?}");
    }
    assert!(
        took >= deadline && took < deadline + Duration::from_millis(700),
        "took {took:?}"
    );
    assert_eq!(server.requests().len(), 2);
}

/// A lone service runs in the caller's task: its panic and its hang still end in its own
/// row, and the caller goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_service_that_panics_or_hangs_gets_its_row() {
    let deadline = Duration::from_millis(300);
    let engine = Engine::with_settings(Settings {
        deadline,
        ..common::test_settings()
    })
    .unwrap();
    let event = common::fixture("item");
    for (service, expected) in [
        ("panics", "service panicked: deliberate panic"),
        ("sleeps", "deadline of 300ms exceeded"),
    ] {
        let started = Instant::now();
        let report = engine
            .dispatch_to(&event, &[instance(service, service, json!({}))])
            .await;
        assert!(
            started.elapsed() < deadline * 3,
            "{service} held the caller"
        );
        let [row] = &report.results[..] else {
            panic!("one row for {service}: {report:?}");
        };
        assert!(
            matches!(&row.delivery.outcome, Outcome::Failed { reason, .. } if reason.contains(expected)),
            "{service}: {row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_concurrently() {
    // Ten targets that each answer after 300 ms: sent one after another they would take 3 s.
    let server = CaptureServer::start();
    server.script(
        "/",
        [lookout_testkit::Reply::ok().delay(Duration::from_millis(300))],
    );
    let engine = Engine::with_settings(common::test_settings()).unwrap();
    let instances: Vec<Instance> = (0..10)
        .map(|i| {
            instance(
                &format!("hook{i}"),
                "webhook",
                json!({"urls": [format!("{}/{i}", server.url())]}),
            )
        })
        .collect();
    let started = Instant::now();
    let report = engine
        .dispatch_to(&common::fixture("comment"), &instances)
        .await;
    assert!(!report.has_failures(), "{report:?}");
    assert_eq!(report.results.len(), 10);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
}

mod items_only {
    use super::*;
    lookout::service! {
        /// Items only
        ///
        /// A test service listening to `Item.*` that formats with the shared message.
        pub struct ItemsOnly;

        category: Webhook,
        events: &["Item.*", "Widget.*"],
        limits: lookout::Limits::none("a test service"),
        schema: Schema::new(&[]),
        example: "",
    }
    impl Service for ItemsOnly {
        fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
            lookout::Message::from_event(job.event)?;
            Ok(Vec::new())
        }
    }
}

#[tokio::test]
async fn skips_and_payload_problems_are_reported_per_service() {
    let engine = Engine::with_settings(common::test_settings()).unwrap();
    let instances = [instance("items", "items_only", json!({}))];
    let outcome = |fixture: &str| {
        let engine = engine.clone();
        let instances = instances.clone();
        let event = common::fixture(fixture);
        async move {
            engine.dispatch_to(&event, &instances).await.results[0]
                .delivery
                .outcome
                .clone()
        }
    };
    assert_eq!(
        outcome("comment").await,
        Outcome::Skipped {
            reason: "not listening to Comment.created".into()
        }
    );
    assert_eq!(
        outcome("unknown-model").await,
        Outcome::Skipped {
            reason: "no message for model Widget".into()
        }
    );
    assert_eq!(
        outcome("item-missing-title").await,
        Outcome::Failed {
            reason: "attributes.title: missing".into(),
            status: None
        }
    );
}
