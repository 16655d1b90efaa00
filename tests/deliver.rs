//! End to end, for every service: each fixture is really sent over HTTP to a local
//! capture server, and what arrived must be exactly what the service built (the same
//! requests the snapshots record): method, path and query, content type, headers, body
//! bytes. What is built here carries the delivery id `msg_test`; what arrives carries a
//! real one (`msg_` and 32 hex digits), which is read as `msg_test` wherever it stands:
//! the path (Matrix transaction ids), a header (an `Idempotency-Key`) or the body
//! (broker message attributes).

mod common;

use std::sync::Arc;

use lookout::{
    Body, BuildError, Engine, HttpRequest, Instance, Job, Options, Outcome, Outgoing, Registration,
    Service, catalogue,
};
use lookout_testkit::{CaptureServer, Captured};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_delivers_what_it_builds() {
    let server = CaptureServer::start();
    // Redirected too, for services with a fixed public host (no URL option to move).
    let settings = lookout_testkit::settings_redirected_to(&server);
    let engine = Engine::with_settings(settings).unwrap();
    let mut checked = 0;
    for reg in catalogue() {
        let instance = common::instance(reg, &common::pointed_at(reg, &server.url()));
        checked += delivers_what_it_builds(&engine, &server, reg, &instance).await;
    }
    assert!(checked > 0, "no request was checked");
}

/// A service that sends its delivery id in a header, as docs/DELIVERY.md invites (not
/// in the registry, so no other test binary sees it).
struct Idempotent;

impl Service for Idempotent {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let request = HttpRequest::post(job.url("url")?)
            .json(json!({"event": job.event.kind()}))
            .header("Idempotency-Key", job.delivery_id);
        Ok(vec![request.into()])
    }
}

const IDEMPOTENT_OPTIONS: &[lookout::OptionSpec] =
    &[lookout::OptionSpec::url("url", "Where to send.").public()];

static IDEMPOTENT: Registration = Registration {
    module: "deliver::idempotent",
    docs: "Idempotent\n",
    category: lookout::Category::Webhook,
    events: &["*.created"],
    rate_limit: None,
    answers: lookout::Answers::BY_STATUS,
    limits: lookout::Limits::none("a test service"),
    schema: lookout::Schema::new(IDEMPOTENT_OPTIONS),
    example: r#"url = "https://idempotent.example.com/hook""#,
    service: &Idempotent,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_id_in_a_header_is_compared_as_built() {
    let server = CaptureServer::start();
    let engine = Engine::with_settings(lookout_testkit::settings_redirected_to(&server)).unwrap();
    let options = json!({ "url": format!("{}/hook", server.url()) });
    let options = Options::validate(
        "idempotent",
        &IDEMPOTENT.schema,
        options.as_object().unwrap(),
    );
    let instance = Instance {
        name: "idempotent".to_owned(),
        registration: &IDEMPOTENT,
        options: Arc::new(options.unwrap()),
        events: None,
        templates: Default::default(),
        lane: Default::default(),
        fallback: None,
        shaping: Default::default(),
    };
    let checked = delivers_what_it_builds(&engine, &server, &IDEMPOTENT, &instance).await;
    assert!(checked > 0, "no request was checked");
    let sent = server.requests();
    let key = sent[0].header("idempotency-key").unwrap();
    assert!(key.starts_with("msg_") && key != "msg_test", "{key}");
}

/// Sends every fixture to `instance` of `reg` and checks that what arrived at `server`
/// is what it built; how many requests were checked.
async fn delivers_what_it_builds(
    engine: &Engine,
    server: &CaptureServer,
    reg: &Registration,
    instance: &Instance,
) -> usize {
    let mut checked = 0;
    for (name, json) in common::fixtures() {
        let event = lookout::Event::parse(&json).unwrap();
        let job = instance.job(&event, "msg_test");
        // What the engine sends: the service's build, fitted to its limits.
        let built = lookout::limits::build_within(&reg.limits, &job, |job| reg.service.build(job));
        // A payload the service cannot format (a missing field) must fail it, naming
        // the field, and nothing is sent.
        let payload_problem = match &built {
            Err(err @ BuildError::Payload(_)) if reg.listens_to(&event) => Some(err.to_string()),
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
            .dispatch_to(&event, std::slice::from_ref(instance))
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
            assert_arrived_as_built(&format!("{} × {name}", reg.name()), want, got);
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
    checked
}

/// What arrived (`got`) is what was built (`want`): method, path and query, content
/// type, user agent, the service's own headers and the body, the delivery id read as
/// `msg_test` in each.
fn assert_arrived_as_built(context: &str, want: &HttpRequest, got: &Captured) {
    let as_built = common::with_test_delivery_id;
    assert_eq!(got.method, want.method.as_str(), "{context}: method");
    let want_path = match want.url.query() {
        Some(q) => format!("{}?{q}", want.url.path()),
        None => want.url.path().to_owned(),
    };
    assert_eq!(as_built(&got.path), want_path, "{context}: path");
    assert_eq!(
        got.header("content-type"),
        want.body.content_type(),
        "{context}: content type"
    );
    // Brokers carry the delivery id in the body (message attributes).
    assert_eq!(
        as_built(&got.text()).into_bytes(),
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
            got.header(&header.name).map(as_built),
            Some(header.value.clone()),
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
}
