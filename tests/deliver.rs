//! End to end, for every service: each fixture is really sent over HTTP to a local
//! capture server, and what arrived must be exactly what the service built (the same
//! requests the snapshots record): method, path and query, content type, body bytes.

mod common;

use lookout::{Body, BuildError, Engine, Job, Outcome, Outgoing, catalogue};
use lookout_testkit::CaptureServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_delivers_what_it_builds() {
    let server = CaptureServer::start();
    // Redirected too, for services with a fixed public host (no URL option to move).
    let settings = lookout_testkit::settings_redirected_to(&server);
    let engine = Engine::with_settings(settings).unwrap();
    let mut checked = 0;
    for reg in catalogue() {
        let instance = common::instance(reg, &common::pointed_at(reg, &server.url()));
        for (name, json) in common::fixtures() {
            let event = lookout::Event::parse(&json).unwrap();
            let job = Job {
                event: &event,
                options: &instance.options,
                delivery_id: "msg_test",
                templates: &instance.templates,
                cut: lookout::text::budget::Cut::NONE,
            };
            // What the engine sends: the service's build, fitted to its limits.
            let built =
                lookout::limits::build_within(&reg.limits, &job, |job| reg.service.build(job));
            // A payload the service cannot format (a missing field) must fail it, naming
            // the field, and nothing is sent.
            let payload_problem = match &built {
                Err(err @ BuildError::Payload(_)) if reg.listens_to(&event) => {
                    Some(err.to_string())
                }
                _ => None,
            };
            let built = match built {
                Ok(outgoing) if reg.listens_to(&event) => outgoing,
                _ => Vec::new(),
            };
            // Only HTTP is compared here. A service that sends anything else (email over
            // SMTP) has its own end-to-end test in its file, and is not dispatched here:
            // its example options point at a real host.
            if built.iter().any(|o| !matches!(o, Outgoing::Http(_))) {
                continue;
            }
            let expected: Vec<_> = built
                .into_iter()
                .filter_map(|o| match o {
                    Outgoing::Http(request) => Some(request),
                    _ => None,
                })
                .collect();
            let before = server.requests().len();
            let report = engine
                .dispatch_to(&event, std::slice::from_ref(&instance))
                .await;
            let arrived = server.requests()[before..].to_vec();
            assert_eq!(
                arrived.len(),
                expected.len(),
                "{} × {name}: {} requests arrived, {} were built; report: {report:?}",
                reg.name(),
                arrived.len(),
                expected.len()
            );
            for (want, got) in expected.iter().zip(&arrived) {
                let context = format!("{} × {name}", reg.name());
                assert_eq!(got.method, want.method.as_str(), "{context}: method");
                let want_path = match want.url.query() {
                    Some(q) => format!("{}?{q}", want.url.path()),
                    None => want.url.path().to_owned(),
                };
                assert_eq!(
                    common::with_test_delivery_id(&got.path),
                    want_path,
                    "{context}: path"
                );
                assert_eq!(
                    got.header("content-type"),
                    want.body.content_type(),
                    "{context}: content type"
                );
                // Brokers carry the delivery id in the body (message attributes).
                assert_eq!(
                    common::with_test_delivery_id(&got.text()).into_bytes(),
                    want.body.to_bytes(),
                    "{context}: body"
                );
                assert_eq!(
                    got.header("user-agent"),
                    Some(lookout::delivery::user_agent().as_str()),
                    "{context}: user agent"
                );
                for header in &want.headers {
                    assert_eq!(
                        got.header(&header.name),
                        Some(header.value.as_str()),
                        "{context}: {}",
                        header.name
                    );
                }
                if let Body::RawJson(raw) = &want.body {
                    assert_eq!(
                        got.text(),
                        **raw,
                        "{context}: raw payload forwarded byte for byte"
                    );
                }
                checked += 1;
            }
            if let Some(problem) = payload_problem {
                let reasons: Vec<String> = report
                    .results
                    .iter()
                    .map(|r| match &r.delivery.outcome {
                        Outcome::Failed { reason, .. } => reason.clone(),
                        other => format!("not failed: {other:?}"),
                    })
                    .collect();
                assert_eq!(reasons, [problem], "{} × {name}", reg.name());
                continue;
            }
            assert!(
                !report.has_failures(),
                "{} × {name}: the capture server answered 200, yet: {report:?}",
                reg.name()
            );
        }
    }
    assert!(checked > 0, "no request was checked");
}
