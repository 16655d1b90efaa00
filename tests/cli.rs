//! The real `lookout` binary, end to end, against a local capture server.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lookout_testkit::{CaptureServer, Reply};

const CANARY: &str = "CANARYs3cr3t";

fn lookout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .output()
        .expect("run lookout")
}

fn fixture_path(name: &str) -> String {
    lookout_testkit::fixture_path(name)
}

/// Writes a config file into a fresh temp dir and returns its path.
fn config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `lookout send --payload PAYLOAD --config CONFIG`, with `extra` arguments.
fn send(payload: &str, config: &str, extra: &[&str]) -> Output {
    let mut args = vec!["send", "--payload", payload, "--config", config];
    args.extend_from_slice(extra);
    lookout(&args)
}

/// Panics, showing what the command printed, unless it exited with 0.
fn assert_succeeded(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(out), stderr(out));
}

/// A config file with the test `[engine]` lines and one webhook service sending to `url`.
fn webhook_to(url: &str) -> (tempfile::TempDir, String) {
    config(&format!(
        "[engine]\n{}\n[services.webhook]\nurls = [\"{url}\"]\n",
        common::test_engine_toml()
    ))
}

#[test]
fn send_delivers_the_payload_byte_for_byte() {
    let server = CaptureServer::start();
    let (_dir, cfg) = webhook_to(&format!("{}/in/{CANARY}", server.url()));
    let out = send(&fixture_path("item"), &cfg, &[]);
    assert_succeeded(&out);
    assert!(stdout(&out).contains("delivered"), "{}", stdout(&out));
    assert!(
        !stdout(&out).contains(CANARY),
        "secret URL printed: {}",
        stdout(&out)
    );
    let got = server.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, format!("/in/{CANARY}"));
    assert_eq!(
        got[0].text(),
        std::fs::read_to_string(fixture_path("item")).unwrap()
    );
}

#[test]
fn payload_from_stdin_and_json_report() {
    let server = CaptureServer::start();
    let (_dir, cfg) = webhook_to(&format!("{}/a", server.url()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["send", "--payload", "-", "--config", &cfg, "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            std::fs::read_to_string(fixture_path("comment"))
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["event"], "Comment.created");
    assert_eq!(report["results"][0]["outcome"], "delivered");
    assert_eq!(report["results"][0]["status"], 200);
    assert_eq!(report["results"][0]["service"], "webhook");
}

/// A target that never answers costs its own row the deadline, and nobody else anything.
#[test]
fn a_hung_target_does_not_delay_the_others() {
    let server = CaptureServer::start();
    server.script("/hang", [Reply::hang()]);
    let (_dir, cfg) = config(&format!(
        "[engine]\n{engine}\ndeadline = \"1500ms\"\nrequest_timeout = \"1s\"\n\
         [services.webhook]\nurls = [\"{url}/hang\", \"{url}/ok\"]\n[services.second]\nservice = \"webhook\"\nurls = [\"{url}/ok2\"]\n",
        engine = common::test_engine_toml_without_timeouts(),
        url = server.url()
    ));
    let started = Instant::now();
    let out = send(&fixture_path("item"), &cfg, &["--json"]);
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed delivery exits 1: {}",
        stdout(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcomes: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "delivered", "delivered"], "{report:#}");
    let reason = report["results"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no answer within ") && reason.ends_with("ms"),
        "{report:#}"
    );
    for fast in &report["results"].as_array().unwrap()[1..] {
        assert!(
            fast["duration_ms"].as_u64().unwrap() < 1000,
            "a fast target waited: {report:#}"
        );
    }
    assert!(
        took < Duration::from_secs(5),
        "the whole send took {took:?}"
    );
}

#[test]
fn dry_run_prints_requests_with_secrets_redacted() {
    let (_dir, cfg) = config(&format!(
        "[services.webhook]\nurls = [\"https://hooks.example.com/{CANARY}\"]\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"
    ));
    let out = send(&fixture_path("item"), &cfg, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("POST https://hooks.example.com/[redacted]"),
        "{text}"
    );
    assert!(text.contains("\"model\": \"Item\""), "{text}");
    assert!(
        !text.contains(CANARY) && !text.contains("MfKQ9r8"),
        "secret printed: {text}"
    );
}

#[test]
fn bad_input_exits_2_with_one_clear_line() {
    let (_dir, cfg) = config("[services.webhook]\nurls = [\"https://example.com/x\"]\n");
    let dir = tempfile::tempdir().unwrap();
    let bad: PathBuf = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"model\": \"Item\",\n \"product\": {\"id\": 1, \"name\": \"p\"},\n oops }",
    )
    .unwrap();
    let out = send(bad.to_str().unwrap(), &cfg, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ") && err.contains("line 3, column 2"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    std::fs::write(
        &bad,
        r#"{"product": {"id": 1, "name": "p"}, "attributes": {}}"#,
    )
    .unwrap();
    let out = send(bad.to_str().unwrap(), &cfg, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("model: missing"), "{}", stderr(&out));
}

#[test]
fn validate_reports_every_problem_naming_service_and_option() {
    let (_dir, cfg) = config(&format!(
        "[services.webhook]\nurls = [\"ftp://{CANARY}\"]\ncolour = \"red\"\n[services.nope]\nx = 1\n[services.hook2]\nservice = \"webhook\"\n"
    ));
    let out = lookout(&["validate", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for expected in [
        "[services.webhook] urls: expected",
        "[services.webhook] colour: unknown option",
        "[services.nope]: unknown service `nope`",
        "[services.hook2] urls: required option is missing",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains(CANARY), "secret value echoed: {err}");

    let (_dir, cfg) = config("[services.webhook]\nurls = \"https://example.com/k\"\n");
    let out = lookout(&["validate", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 service(s) enabled") && !stdout(&out).contains("/k"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_reports_a_problem_in_every_table_at_once() {
    let (_dir, cfg) = config(
        "[engine]\ndeadline = \"soon\"\n[services.slack]\nchannel = \"ops\"\n\
         [worker]\nlease = \"x\"\n[server]\ntrusted_proxies = [\"nope\"]\n[wroker]\n",
    );
    let out = lookout(&["validate", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for expected in [
        "[engine] deadline: `soon` is not a duration",
        "[services.slack] url: required option is missing",
        "[worker] lease: ",
        "[server] trusted_proxies: ",
        "unknown section `wroker`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn json_configs_are_accepted() {
    let server = CaptureServer::start();
    let (_dir, cfg) = config(&format!(
        r#"{{"engine": {}, "services": {{"webhook": {{"urls": ["{}/j"]}}}}}}"#,
        common::test_engine_json(),
        server.url()
    ));
    let out = send(&fixture_path("deploy"), &cfg, &[]);
    assert_succeeded(&out);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn test_command_sends_a_sample_to_one_service() {
    let server = CaptureServer::start();
    let (_dir, cfg) = config(&format!(
        "[engine]\n{engine}\n[services.webhook]\nurls = [\"{url}/one\"]\n[services.other]\nservice = \"webhook\"\nurls = [\"{url}/two\"]\n",
        engine = common::test_engine_toml(),
        url = server.url()
    ));
    let out = lookout(&["test", "other", "--config", &cfg, "--model", "comment"]);
    assert_succeeded(&out);
    let got = server.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/two");
    assert_eq!(got[0].json()["model"], "Comment");

    let out = lookout(&["test", "other", "--config", &cfg, "--model", "Sprocket"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no sample for model `Sprocket`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn services_and_docs_list_the_whole_catalogue() {
    let out = lookout(&["services", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = lookout::catalogue().iter().map(|r| r.name()).collect();
    assert_eq!(names, expected);
    let webhook = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "webhook")
        .unwrap();
    assert_eq!(webhook["options"][0]["name"], "urls");
    assert_eq!(webhook["options"][0]["secret"], true);

    let out = lookout(&["docs", "--html"]);
    let html = stdout(&out);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for name in expected {
        assert!(
            html.contains(&format!("<section id=\"{name}\">")),
            "{name} missing from the HTML catalogue"
        );
    }
    let out = lookout(&["docs", "webhook"]);
    assert!(stdout(&out).starts_with("# Webhook\n"), "{}", stdout(&out));
    let out = lookout(&["docs", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `make demo`, the README's first command: serve on its SQLite store, a local sink, the
/// five samples posted over HTTP, every delivery done (one target fails twice first).
#[test]
fn the_demo_delivers_everything() {
    let out = lookout(&["demo"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(text.matches("→ 202 Accepted").count(), 5, "{text}");
    assert!(text.contains("queue depth 0"), "{text}");
    assert!(text.contains("delivered  35"), "{text}");
    assert!(
        text.contains("flaky     7 requests, answered 503 503 200"),
        "{text}"
    );
    assert!(
        !text.contains("demo-key-not-real"),
        "a secret was printed: {text}"
    );
}
