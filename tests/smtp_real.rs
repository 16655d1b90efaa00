//! Email and TLS against servers the project did not write (issue 25, findings 6 and 7):
//! aiosmtpd (from PyPI, in `.venv/`, installed by `make test-deps`) and Python's own
//! HTTPS server, started on 127.0.0.1 by `tests/smtp_sink.py`. What aiosmtpd receives is
//! read by Python's standard `email` parser, as a mail client would read it.
//!
//! - a title with CR, LF and other line breaks arrives as a one-line Subject;
//! - a self-signed certificate, and TLS spoken to a plain server, fail once and for good
//!   (SMTP and HTTP alike), with a reason in words and no password in it;
//! - a server that offers no STARTTLS is said to offer none.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::smtp_sink::Sink;

use lookout::{Outcome, Report};
use serde_json::{Value, json};
// Links every service into the test binary.
use services as _;

const PASSWORD: &str = "smtp-pass-7f3a9c";
/// A self-signed certificate for `localhost` and its key, made by `openssl` in `dir`.
/// `as_ca`: marked as a CA (what `openssl req -x509` makes by default), else as a
/// server's own certificate, which the verifier then refuses for its unknown issuer.
fn self_signed(dir: &Path, as_ca: bool) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let constraints = if as_ca {
        "basicConstraints=critical,CA:TRUE"
    } else {
        "basicConstraints=critical,CA:FALSE"
    };
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-subj",
            "/CN=lookout-test-self-signed",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-addext", constraints, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs (make test-deps installs it)");
    assert!(status.success(), "openssl could not make a certificate");
    let text = |path: PathBuf| path.to_str().unwrap().to_owned();
    (text(cert), text(key))
}

fn email_options(port: u16, security: &str) -> Value {
    json!({
        "host": "localhost", "port": port, "security": security,
        "username": "bot", "password": PASSWORD,
        "from": "Lookout <bot@example.com>", "to": ["team@example.com"],
    })
}

/// The item sample with control characters and line breaks in its title and product.
fn event_with_line_breaks() -> String {
    let mut event: Value = serde_json::from_str(&lookout_testkit::fixture_json("item")).unwrap();
    event["attributes"]["title"] = json!("Fix the\r\nlogin\npage\u{2028}now\u{0}\tplease");
    event["product"]["name"] = json!("Web\rApp");
    event.to_string()
}

async fn send(service: &str, options: Value, event: &str) -> Report {
    lookout_testkit::dispatch_one(service, options, event).await
}

/// The one result's outcome and tries; the password must not show in the report.
fn only_result(report: &Report) -> (Outcome, u32) {
    lookout_testkit::assert_hidden(report, PASSWORD);
    assert_eq!(report.results.len(), 1, "{report:?}");
    let delivery = &report.results[0].delivery;
    (delivery.outcome.clone(), delivery.attempts)
}

fn assert_final_failure(report: &Report, reason: &str) {
    let (outcome, attempts) = only_result(report);
    match outcome {
        Outcome::Failed { reason: got, .. } => assert_eq!(got, reason),
        other => panic!("not a failure: {other:?}"),
    }
    assert_eq!(attempts, 1, "a final failure is tried once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_with_line_breaks_arrives_as_a_one_line_subject() {
    let sink = Sink::start(&["plain"]);
    let options = json!({
        "host": "localhost", "port": sink.port, "security": "none",
        "from": "Look\tout <bot@example.com>", "to": ["team@example.com"],
    });
    let report = send("email", options, &event_with_line_breaks()).await;
    let (outcome, _) = only_result(&report);
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");

    let message = sink.next_message();
    let subject = message["headers"]["subject"].as_str().unwrap();
    assert_eq!(
        subject,
        "[Web App] Story #1212: Fix the login page now please"
    );
    let fields = message["headers"].as_object().unwrap();
    for (name, value) in fields {
        let value = value.as_str().unwrap();
        assert!(
            !value.contains(['\r', '\n', '\t', '\u{2028}', '\u{0}']),
            "{name}: {value:?}"
        );
    }
    assert_eq!(fields["from"], "Look out <bot@example.com>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_certificate_used_by_the_server_fails_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), true);
    let sink = Sink::start(&["smtps", &cert, &key]);
    let report = send("email", email_options(sink.port, "tls"), &item()).await;
    assert_final_failure(
        &report,
        "TLS failed: the server's certificate is a CA certificate, not a server's \
         (a self-signed certificate made as a CA?)",
    );
    assert!(sink.printed_so_far().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_fails_once_for_its_unknown_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), false);
    let sink = Sink::start(&["smtps", &cert, &key]);
    let report = send("email", email_options(sink.port, "tls"), &item()).await;
    assert_final_failure(&report, UNKNOWN_ISSUER);
}

const UNKNOWN_ISSUER: &str = "TLS failed: the server's certificate is not signed by an \
                              authority this machine trusts (self-signed, or from a private CA)";
const NOT_TLS: &str = "TLS failed: the server did not answer in TLS (is this a plain-text port?)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_spoken_to_a_plain_smtp_server_fails_once() {
    let sink = Sink::start(&["plain"]);
    let report = send("email", email_options(sink.port, "tls"), &item()).await;
    assert_final_failure(&report, NOT_TLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_starttls_is_said_to_offer_none() {
    let sink = Sink::start(&["plain"]);
    let report = send("email", email_options(sink.port, "starttls"), &item()).await;
    assert_final_failure(
        &report,
        "the server does not offer STARTTLS: use `security = \"tls\"` if it speaks TLS \
         from the start (usually port 465), or `security = \"none\"` for a relay on a \
         trusted network",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate_fails_once() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), false);
    let sink = Sink::start(&["https", &cert, &key]);
    let url = format!("https://localhost:{}/hook?key={PASSWORD}", sink.port);
    let report = send("webhook", json!({ "urls": [url] }), &item()).await;
    assert_final_failure(&report, UNKNOWN_ISSUER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_spoken_to_a_plain_server_fails_once() {
    // A plain SMTP server greets first: what comes back to the ClientHello is not TLS.
    let sink = Sink::start(&["plain"]);
    let url = format!("https://localhost:{}/hook?key={PASSWORD}", sink.port);
    let report = send("webhook", json!({ "urls": [url] }), &item()).await;
    assert_final_failure(&report, NOT_TLS);
}

fn item() -> String {
    lookout_testkit::fixture_json("item")
}
