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

    let stdout = verify(&python, SECRET, &arrived).expect("signatures verify");
    assert_eq!(stdout.matches(": verified").count(), 2, "{stdout}");
}

/// Runs the official library on `arrived` with `secret`: what it printed, or why it
/// refused.
fn verify(
    python: &std::path::Path,
    secret: &str,
    arrived: &[lookout_testkit::Captured],
) -> Result<String, String> {
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
    let input = json!({ "secret": secret, "requests": requests }).to_string();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/verify_standard_webhooks.py");
    let mut child = Command::new(python)
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
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The secret rotated in: receivers on the old and on the new one both verify.
const NEW_SECRET: &str = "whsec_c2VjcmV0LWtleS1udW1iZXItdHdvIQ==";

async fn send_rotating(server: &CaptureServer, path: &str, expires: &str) {
    let config = format!(
        "[services.webhook]\nurls = [\"{}{path}\"]\nsecret = \"{NEW_SECRET}\"\n\
         previous_secret = \"{SECRET}\"\nprevious_expires = \"{expires}\"\n",
        server.url()
    );
    let mut config = Config::parse(&config, "test").unwrap();
    config.engine = common::test_settings();
    let report = Engine::new(config)
        .unwrap()
        .dispatch(&common::fixture("item"))
        .await;
    let outcome = &report.results[0].delivery.outcome;
    assert_eq!(*outcome, Outcome::Delivered { status: 200 }, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_verifies_with_the_old_key_and_the_new_until_it_expires() {
    let python = venv_python();
    let server = CaptureServer::start();
    send_rotating(&server, "/rotating", "2999-12-31T00:00:00Z").await;
    let arrived = server.requests_to("/rotating");
    let signatures = arrived[0].header("webhook-signature").unwrap_or_default();
    assert_eq!(signatures.matches("v1,").count(), 2, "{signatures}");
    for secret in [SECRET, NEW_SECRET] {
        let verified = verify(&python, secret, &arrived).expect("either key verifies");
        assert!(verified.contains(": verified"), "{verified}");
    }

    send_rotating(&server, "/expired", "2000-01-01T00:00:00Z").await;
    let arrived = server.requests_to("/expired");
    let signatures = arrived[0].header("webhook-signature").unwrap_or_default();
    assert_eq!(signatures.matches("v1,").count(), 1, "{signatures}");
    assert!(verify(&python, NEW_SECRET, &arrived).is_ok());
    assert!(
        verify(&python, SECRET, &arrived).is_err(),
        "the expired secret no longer signs"
    );
}

#[test]
fn rotation_settings_are_checked_naming_the_option() {
    let bad = "[services.webhook]\nurls = [\"http://127.0.0.1:9/\"]\nsecret = \"whsec_c2VjcmV0LWtleS1udW1iZXItdHdvIQ==\"\n\
               previous_secret = \"whsec_c2VjcmV0LWtleS1udW1iZXItdHdvIQ==\"\n\
               previous_expires = \"soon\"\nsecrets = [\"nope\"]\n";
    let err = Config::parse(bad, "test").unwrap_err().to_string();
    assert!(err.contains("previous_expires"), "{err}");
    assert!(err.contains("secrets"), "{err}");
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
