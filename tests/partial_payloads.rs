//! Payloads a service cannot format, sent to every HTTP service at once (one dispatch, one
//! capture server): a missing field fails each service that formats a message, naming the
//! field; a model no message exists for skips it; and services that forward the payload
//! as it is deliver it either way. No row is touched by another service's problem.

mod common;

use lookout::{
    BuildError, Engine, Event, Instance, Job, Outcome, Outgoing, Registration, catalogue,
};
use lookout_testkit::{CaptureServer, Captured};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_field_fails_only_the_services_that_format() {
    let failed = Outcome::Failed {
        reason: "attributes.title: missing".into(),
        status: None,
    };
    dispatch_everywhere("item-missing-title", &failed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_model_skips_only_the_services_that_format() {
    let skipped = Outcome::Skipped {
        reason: "no message for model Widget".into(),
    };
    dispatch_everywhere("unknown-model", &skipped).await;
}

/// Some services of each kind, named so that the generic checks cannot pass vacuously.
const SOME_FORMATTING: &[&str] = &["slack", "flowdock", "hipchat"];
const SOME_FORWARDING: &[&str] = &["webhook", "errbot"];

/// Dispatches the fixture to every registered HTTP service in one dispatch and checks each
/// row: a service whose build rejects the payload reports exactly `formatting_outcome`;
/// one whose build succeeds delivered; one not listening skipped. Exactly the requests of
/// the services that delivered arrive.
async fn dispatch_everywhere(fixture: &str, formatting_outcome: &Outcome) {
    let server = CaptureServer::start();
    let services = http_services(&server.url());
    let event = common::fixture(fixture);
    let instances: Vec<Instance> = services.iter().map(|(_, i)| i.clone()).collect();
    let engine = Engine::with_settings(common::test_settings()).unwrap();
    let report = engine.dispatch_to(&event, &instances).await;

    let (mut formatting, mut forwarding, mut expected) = (Vec::new(), Vec::new(), Vec::new());
    for (reg, instance) in &services {
        let rows: Vec<&Outcome> = report
            .results
            .iter()
            .filter(|r| r.instance == instance.name)
            .map(|r| &r.delivery.outcome)
            .collect();
        let context = format!("{} × {fixture}", reg.name());
        if !reg.listens_to(&event) {
            let not_listening = Outcome::Skipped {
                reason: format!("not listening to {}", event.kind()),
            };
            assert_eq!(rows, [&not_listening], "{context}");
            continue;
        }
        match outgoing(reg, instance, &event) {
            Err(err) => {
                assert_eq!(
                    rows,
                    [formatting_outcome],
                    "{context}: its build says `{err}`"
                );
                formatting.push(reg.name());
            }
            Ok(requests) => {
                assert_eq!(rows.len(), requests.len(), "{context}: {rows:?}");
                let delivered = |o: &&Outcome| matches!(o, Outcome::Delivered { .. });
                assert!(rows.iter().all(delivered), "{context}: {rows:?}");
                expected.extend(requests.iter().map(as_sent));
                forwarding.push(reg.name());
            }
        }
    }
    for (kind, names, some) in [
        ("format", &formatting, SOME_FORMATTING),
        ("forward", &forwarding, SOME_FORWARDING),
    ] {
        for name in some {
            assert!(
                names.contains(name),
                "{fixture}: {name} should {kind}: {names:?}"
            );
        }
    }
    let mut arrived: Vec<Sent> = server.requests().iter().map(as_arrived).collect();
    arrived.sort();
    expected.sort();
    assert_eq!(arrived, expected, "{fixture}: the requests that arrived");
}

/// Every registered service that sends only HTTP (email is left out: its example points
/// at a real mail server), configured from its example with every URL moved to `base`.
fn http_services(base: &str) -> Vec<(&'static Registration, Instance)> {
    catalogue()
        .into_iter()
        .map(|reg| (reg, common::instance(reg, &common::pointed_at(reg, base))))
        .filter(|(reg, instance)| {
            common::fixtures().iter().all(|(_, json)| {
                match outgoing(reg, instance, &Event::parse(json).unwrap()) {
                    Ok(out) => out.iter().all(|o| matches!(o, Outgoing::Http(_))),
                    Err(_) => true,
                }
            })
        })
        .collect()
}

/// What the service builds for the event (no I/O).
fn outgoing(
    reg: &Registration,
    instance: &Instance,
    event: &Event,
) -> Result<Vec<Outgoing>, BuildError> {
    let job = Job {
        event,
        options: &instance.options,
        delivery_id: "msg_test",
        templates: &instance.templates,
        cut: lookout::text::budget::Cut::NONE,
        sent_at: None,
    };
    reg.service.build(&job)
}

/// Method, path with query, and body (as text, for readable failures): what identifies a
/// request on the capture server.
type Sent = (String, String, String);

fn as_sent(outgoing: &Outgoing) -> Sent {
    let Outgoing::Http(request) = outgoing else {
        panic!("not HTTP: {outgoing:?}");
    };
    let path = match request.url.query() {
        Some(q) => format!("{}?{q}", request.url.path()),
        None => request.url.path().to_owned(),
    };
    let method = request.method.as_str().to_owned();
    let body = String::from_utf8_lossy(&request.body.to_bytes()).into_owned();
    (method, path, body)
}

fn as_arrived(request: &Captured) -> Sent {
    let path = common::with_test_delivery_id(&request.path);
    let body = common::with_test_delivery_id(&request.text());
    (request.method.clone(), path, body)
}
