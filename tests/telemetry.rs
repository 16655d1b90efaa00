//! OpenTelemetry end to end: a real `lookout serve` exporting its traces over OTLP/HTTP
//! to a receiver on 127.0.0.1 that decodes them with the official protobuf definitions
//! (tests/otlp_receiver.py, `opentelemetry-proto` from PyPI in `.venv/`, installed by
//! `make test-deps`), delivering to a local capture server.
//!
//! Checked: the intake span and one span per attempt with their attributes, ids and
//! parents; the `traceparent` the target got; a caller's `traceparent` continued; the
//! standard `OTEL_*` variables honoured; and no secret anywhere in what was exported.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::serving::{Place, Serving};
use lookout_testkit::{CaptureServer, Reply};
use serde_json::Value;

const TOKEN: &str = "telemetry-test-token-4e8b1d6f2a9c03e7";
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// In the target URL: a secret path that must never be exported.
const URL_KEY: &str = "K3YxSECRETx9";
const SECRETS: [&str; 3] = [URL_KEY, SIGNING_SECRET, TOKEN];

/// The caller's trace, continued by the first event.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// How long anything here may take to arrive.
const WAIT: Duration = Duration::from_secs(30);

/// The receiver, stopped (its stdin closed, then killed) when dropped.
struct Receiver {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
    lines: mpsc::Receiver<String>,
    /// Every span received so far.
    spans: Vec<Value>,
    /// Every export's raw protobuf body.
    bodies: Vec<Vec<u8>>,
}

impl Receiver {
    fn start() -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_receiver.py");
        let mut child = Command::new(venv().join("bin/python"))
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver (make test-deps installs opentelemetry-proto)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = lines.recv_timeout(WAIT).expect("the receiver's ready line");
        let port = ready
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a ready line: {ready}"));
        Receiver {
            child,
            _stdin: stdin,
            port,
            lines,
            spans: Vec::new(),
            bodies: Vec::new(),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Reads exports until `found` picks something out of the spans, for at most
    /// [`WAIT`]; panics naming `what` otherwise.
    fn wait_for<T>(&mut self, what: &str, found: impl Fn(&[Value]) -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(it) = found(&self.spans) {
                return it;
            }
            let left = WAIT.saturating_sub(started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.take(&line),
                Err(_) => panic!("no {what} within {WAIT:?}; spans: {:#?}", self.spans),
            }
        }
    }

    fn take(&mut self, line: &str) {
        let export: Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(export["content_type"], "application/x-protobuf");
        let body = base64::engine::general_purpose::STANDARD
            .decode(export["body"].as_str().expect("body"))
            .expect("base64");
        self.bodies.push(body);
        let spans = export["spans"].as_array().expect("spans");
        self.spans.extend(spans.iter().cloned());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

fn venv() -> PathBuf {
    std::env::var_os("LOOKOUT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

/// `serve` with product `p1` delivering to `target` (a secret URL, signed), exporting
/// to `receiver`, with a retry soon after a failed attempt.
fn serve_exporting_to(receiver: &Receiver, target: &CaptureServer) -> (Place, Serving) {
    let engine = "[engine]\nrequest_timeout = \"5s\"\ndeadline = \"6s\"\n\
                  allow_networks = [\"127.0.0.0/8\"]\n\
                  [worker]\nretry_schedule = [\"50ms\"]\nretry_jitter = 0.0\n";
    let place = Place::new(TOKEN, engine).never_printing(&SECRETS);
    place.product(
        &format!("{}/hook/{URL_KEY}", target.url()),
        Some(SIGNING_SECRET),
    );
    let endpoint = receiver.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "lookout-under-test"),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        // Export within a tenth of a second, not the default five.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let serving = place.serve_with_env(&[], &env);
    (place, serving)
}

async fn post(serving: &Serving, traceparent: Option<&str>) -> Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut request = http
        .post(format!("{}/v1/products/p1/events", serving.url))
        .bearer_auth(TOKEN)
        .body(lookout::samples::ALL[0].1);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202);
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

fn named<'a>(spans: &'a [Value], name: &str, trace: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["name"] == name && s["trace_id"] == trace)
        .collect()
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// The attempt span `number` in `trace`, once exported.
fn attempt(spans: &[Value], trace: &str, number: i64) -> Option<Value> {
    named(spans, "delivery attempt", trace)
        .into_iter()
        .find(|s| attribute(s, "lookout.attempt").as_i64() == Some(number))
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_the_intake_and_each_attempt_and_carries_the_trace() {
    let mut receiver = Receiver::start();
    let target = CaptureServer::start();
    // The first attempt fails, the second (50 ms later) is delivered.
    target.script(
        "/hook",
        [Reply::status(500).body("down"), Reply::status(200)],
    );
    let (_place, mut serving) = serve_exporting_to(&receiver, &target);

    // 1. A caller's trace, continued.
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let accepted = post(&serving, Some(&caller)).await;
    let event_id = accepted["id"].as_str().unwrap().to_owned();
    let intake = receiver.wait_for("intake span in the caller's trace", |spans| {
        named(spans, "intake", CALLER_TRACE)
            .first()
            .copied()
            .cloned()
    });
    assert_eq!(intake["parent_span_id"], CALLER_SPAN, "{intake:#}");
    assert_eq!(intake["kind"], "SPAN_KIND_SERVER");
    assert_eq!(intake["service_name"], "lookout-under-test");
    assert_eq!(attribute(&intake, "lookout.product"), "p1");
    assert_eq!(attribute(&intake, "lookout.event"), "Item.created");
    assert_eq!(attribute(&intake, "lookout.event_id"), event_id.as_str());
    assert_eq!(attribute(&intake, "http.route"), "/v1/products/{id}/events");
    assert_eq!(attribute(&intake, "http.response.status_code"), 202);

    let first = receiver.wait_for("first attempt span", |s| attempt(s, CALLER_TRACE, 1));
    let second = receiver.wait_for("second attempt span", |s| attempt(s, CALLER_TRACE, 2));
    for span in [&first, &second] {
        // The worker's attempts, made later, are children of the intake.
        assert_eq!(span["parent_span_id"], intake["span_id"], "{span:#}");
        assert_eq!(span["kind"], "SPAN_KIND_CLIENT");
        assert_eq!(attribute(span, "lookout.product"), "p1");
        assert_eq!(attribute(span, "lookout.configured_service"), "hook");
        assert_eq!(attribute(span, "lookout.service"), "webhook");
        let target_shown = attribute(span, "lookout.target").as_str().unwrap();
        assert!(target_shown.contains("[redacted]"), "{target_shown}");
    }
    assert_eq!(attribute(&first, "lookout.outcome"), "failed");
    assert_eq!(attribute(&first, "http.response.status_code"), 500);
    assert_eq!(first["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(attribute(&second, "lookout.outcome"), "delivered");
    assert_eq!(attribute(&second, "http.response.status_code"), 200);

    // The target got each attempt's own context.
    let sent = target.wait_for(2, WAIT);
    for (request, span) in sent.iter().zip([&first, &second]) {
        let expected = format!("00-{CALLER_TRACE}-{}-01", span["span_id"].as_str().unwrap());
        assert_eq!(request.header("traceparent"), Some(expected.as_str()));
    }

    // 2. No caller trace: the intake starts one, and the attempt continues it.
    post(&serving, None).await;
    let (intake, delivered) = receiver.wait_for("a trace of the intake's own", |spans| {
        let intake = spans
            .iter()
            .find(|s| s["name"] == "intake" && s["trace_id"] != CALLER_TRACE)?;
        let trace = intake["trace_id"].as_str()?;
        Some((intake.clone(), attempt(spans, trace, 1)?))
    });
    assert_eq!(intake["parent_span_id"], "", "a root span: {intake:#}");
    assert_eq!(delivered["parent_span_id"], intake["span_id"]);
    assert_eq!(attribute(&delivered, "lookout.outcome"), "delivered");
    let third = target.wait_for(3, WAIT);
    let traceparent = third[2].header("traceparent").expect("a traceparent");
    assert!(traceparent.contains(intake["trace_id"].as_str().unwrap()));

    // Nothing secret left the process: not in the decoded spans, not in the raw bytes.
    serving.terminate();
    let decoded = serde_json::to_string(&receiver.spans).unwrap();
    for secret in SECRETS {
        assert!(!decoded.contains(secret), "{secret} exported: {decoded}");
        for body in &receiver.bodies {
            let found = body.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} in an OTLP body");
        }
    }
}

/// Unset, nothing is exported and nothing is propagated: targets get no `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_no_traceparent_is_sent() {
    let target = CaptureServer::start();
    let engine = "[engine]\nallow_networks = [\"127.0.0.0/8\"]\n";
    let place = Place::new(TOKEN, engine).never_printing(&SECRETS);
    place.product(&format!("{}/hook/{URL_KEY}", target.url()), None);
    let serving = place.serve(&[]);
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    post(&serving, Some(&caller)).await;
    let sent = target.wait_for(1, WAIT);
    assert_eq!(sent[0].header("traceparent"), None);
}

/// The in-process engine (`lookout send`): one attempt span per configured service, a
/// root here (no caller), its `traceparent` on the request, exported before the
/// process exits.
#[test]
fn send_exports_its_attempt_before_exiting() {
    let mut receiver = Receiver::start();
    let target = CaptureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lookout.toml");
    let url = format!("{}/in/{URL_KEY}", target.url());
    let text = format!(
        "[engine]\n{}\n[services.hook]\nservice = \"webhook\"\nurls = [\"{url}\"]\n",
        common::test_engine_toml()
    );
    std::fs::write(&config, text).unwrap();
    let endpoint = receiver.endpoint();
    let payload = lookout_testkit::fixture_path("item");
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["send", "--payload", &payload, "--config"])
        .arg(&config)
        // The signal-specific variable wins over the general one (`/v1/traces` as given).
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{endpoint}/v1/traces"),
        )
        .env_remove("OTEL_SERVICE_NAME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let span = receiver.wait_for("the attempt span of `send`", |spans| {
        spans
            .iter()
            .find(|s| s["name"] == "delivery attempt")
            .cloned()
    });
    assert_eq!(span["parent_span_id"], "");
    assert_eq!(span["service_name"], "lookout");
    assert_eq!(attribute(&span, "lookout.configured_service"), "hook");
    assert_eq!(attribute(&span, "lookout.attempt"), 1);
    assert_eq!(attribute(&span, "lookout.outcome"), "delivered");
    let sent = target.requests();
    let expected = format!(
        "00-{}-{}-01",
        span["trace_id"].as_str().unwrap(),
        span["span_id"].as_str().unwrap()
    );
    assert_eq!(sent[0].header("traceparent"), Some(expected.as_str()));
    let decoded = serde_json::to_string(&receiver.spans).unwrap();
    assert!(!decoded.contains(URL_KEY), "{decoded}");
}

/// On PostgreSQL, an intake (`serve --no-workers`) and a separate `lookout worker`,
/// each exporting under its own service name: the worker's attempt continues the
/// trace the intake stored with the event. Needs the throwaway cluster of
/// scripts/with-postgres.sh (as `make test` runs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_postgres_continues_the_intake_s_trace() {
    let schema = lookout_testkit::postgres::TestSchema::create().await;
    let mut receiver = Receiver::start();
    let target = CaptureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("engine.toml");
    let engine = format!("[engine]\n{}\n", common::test_engine_toml());
    std::fs::write(&config, engine).unwrap();
    let config = config.to_str().unwrap();
    let db = schema.url.as_str();
    let url = format!("urls={}/hook/{URL_KEY}", target.url());
    let add = [
        "products",
        "add",
        "p1",
        "hook",
        "--service",
        "webhook",
        "--set",
        &url,
    ];
    common::stdout_of(
        Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(add)
            .args(["--database", db]),
    );

    let endpoint = receiver.endpoint();
    let start = |name: &str, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lookout"));
        command
            .args(args)
            .args(["--database", db, "--config", config])
            .env("LOOKOUT_TOKEN", TOKEN)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_SERVICE_NAME", name)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stderr(Stdio::inherit());
        common::spawn_reading_first_line(&mut command, WAIT)
    };
    let (mut intake, first_line) = start(
        "lookout-intake",
        &["serve", "--listen", "127.0.0.1:0", "--no-workers"],
    );
    let base = first_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("serve prints its URL")
        .to_owned();
    let (mut worker, _) = start("lookout-worker", &["worker", "--poll", "100ms"]);

    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http
        .post(format!("{base}/v1/products/p1/events"))
        .bearer_auth(TOKEN)
        .header("traceparent", &caller)
        .body(lookout::samples::ALL[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (intake_span, attempt_span) = receiver.wait_for("intake and worker spans", |spans| {
        let intake = named(spans, "intake", CALLER_TRACE)
            .first()
            .copied()?
            .clone();
        Some((intake, attempt(spans, CALLER_TRACE, 1)?))
    });
    assert_eq!(intake_span["service_name"], "lookout-intake");
    assert_eq!(intake_span["parent_span_id"], CALLER_SPAN);
    assert_eq!(attempt_span["service_name"], "lookout-worker");
    assert_eq!(attempt_span["parent_span_id"], intake_span["span_id"]);
    assert_eq!(attribute(&attempt_span, "lookout.outcome"), "delivered");
    let sent = target.wait_for(1, WAIT);
    let expected = format!(
        "00-{CALLER_TRACE}-{}-01",
        attempt_span["span_id"].as_str().unwrap()
    );
    assert_eq!(sent[0].header("traceparent"), Some(expected.as_str()));
    let decoded = serde_json::to_string(&receiver.spans).unwrap();
    assert!(
        !decoded.contains(URL_KEY) && !decoded.contains(TOKEN),
        "{decoded}"
    );

    common::stop_child(&mut worker);
    common::stop_child(&mut intake);
    schema.drop_schema().await;
}
