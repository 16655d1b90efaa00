//! The webhook service's Standard Webhooks signatures, checked by an independent
//! implementation: the official `standardwebhooks` Python package (installed into .venv/
//! by `make test-deps`), run on exactly what arrived at the capture server.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use lookout::{Config, Engine, Outcome, Settings};
use lookout_testkit::{CaptureServer, Reply};
use serde_json::json;

/// The secret from the Standard Webhooks specification's examples.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("LOOKOUT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test-deps` (it installs the standardwebhooks package \
         this test verifies signatures with)",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_the_official_library_on_every_try() {
    let python = venv_python();
    let server = CaptureServer::start();
    // A failed first try: the retry must carry the same webhook-id, freshly signed.
    server.script("/signed", [Reply::status(503), Reply::ok()]);
    let config = format!(
        "[services.webhook]\nurls = [\"{}/signed\"]\nsecret = \"{SECRET}\"\n",
        server.url()
    );
    let mut config = Config::parse(&config, "test").unwrap();
    config.engine = Settings {
        backoff: Duration::from_millis(10),
        ..common::test_settings()
    };
    let engine = Engine::new(config).unwrap();
    let report = engine.dispatch(&common::fixture("comment")).await;
    let row = &report.results[0].delivery;
    assert_eq!(
        row.outcome,
        Outcome::Delivered { status: 200 },
        "{report:?}"
    );
    assert_eq!(row.attempts, 2);

    let arrived = server.requests_to("/signed");
    assert_eq!(arrived.len(), 2);
    assert_eq!(
        arrived[0].header("webhook-id"),
        arrived[1].header("webhook-id"),
        "webhook-id must stay the same across retries"
    );
    assert!(arrived[0].header("webhook-id").unwrap().starts_with("msg_"));

    let requests: Vec<_> = arrived
        .iter()
        .map(|r| {
            let headers: serde_json::Map<String, serde_json::Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({ "headers": headers, "body": r.text() })
        })
        .collect();
    let input = json!({ "secret": SECRET, "requests": requests }).to_string();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/verify_standard_webhooks.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the verify script");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "standardwebhooks refused the signatures:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches(": verified").count(), 2, "{stdout}");
}

/// Without a secret, nothing is signed (and the preview says where signatures would go
/// only when there is one).
#[test]
fn unsigned_without_a_secret() {
    let reg = lookout::service::find("webhook").unwrap();
    let instance = common::instance(reg, &common::example_options(reg));
    let preview = lookout::dispatch::preview_one(&common::fixture("item"), &instance);
    assert!(
        preview.requests[0]
            .headers
            .iter()
            .all(|(name, _)| !name.starts_with("webhook-")),
        "{preview:?}"
    );
}
