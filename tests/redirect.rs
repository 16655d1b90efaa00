//! Tests never leave the machine: the test settings' SSRF guard passes loopback only,
//! and a service with a fixed public host is tested by redirecting its requests to a
//! capture server, without an option invented to move it.

mod common;

use lookout::Outcome;
use lookout_testkit::{dispatch_one, fixture_json};
use serde_json::json;

const ROUTING_KEY: &str = "R0utingKeyR0utingKeyR0utingKey00";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_host_service_is_delivered_to_the_capture_server() {
    let (_, arrived) = lookout_testkit::deliver_one(
        "pagerduty",
        |_| json!({ "routing_key": ROUTING_KEY }),
        &fixture_json("block"),
        ROUTING_KEY,
    )
    .await;
    assert_eq!(arrived.method, "POST");
    assert_eq!(arrived.path, "/v2/enqueue");
    assert_eq!(arrived.header("host"), Some("events.pagerduty.com"));
    assert_eq!(arrived.json()["routing_key"], ROUTING_KEY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_settings_refuse_what_is_not_loopback_before_sending() {
    // A documentation address (TEST-NET-1): refused by the guard before any connection,
    // and could not be reached anyway.
    let report = dispatch_one(
        "webhook",
        json!({ "urls": ["https://192.0.2.1/hook"] }),
        &fixture_json("item"),
    )
    .await;
    let delivery = &report.results[0].delivery;
    match &delivery.outcome {
        Outcome::Failed { reason, status } => {
            assert_eq!(*status, None);
            assert!(
                reason.starts_with("blocked: 192.0.2.1 is a documentation address")
                    && reason.contains("`loopback_only` is set"),
                "{reason}"
            );
        }
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(delivery.attempts, 1, "a refusal is not tried again");
}
