//! One config file for `serve` and `worker`: `lookout config defaults` prints every
//! setting at the default the code runs with; the `[server]` table sets what the flags
//! set, flags win, and `lookout validate` checks it.

mod common;

use std::process::Command;
use std::time::Duration;

use lookout::config::ConfigFile;
use lookout_server::console::PreviewLimits;
use lookout_server::http::ServeConfig;
use lookout_server::policy::{self, WorkerConfig, WorkerSettings};
use lookout_server::server_settings::ServerSettings;
use serde_json::Value;

fn lookout() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
}

fn defaults() -> String {
    common::stdout_of(lookout().args(["config", "defaults"]))
}

/// `text` with every commented-out setting (`# key = value`) set.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| !k.contains(' ')) =>
            {
                rest.to_owned()
            }
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn load(text: &str) -> ConfigFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.toml");
    std::fs::write(&path, text).unwrap();
    ConfigFile::load(&path, policy::SECTIONS).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn the_defaults_are_what_the_code_runs_with() {
    let text = defaults();
    let file = load(&text);
    let engine = lookout::Settings::default();
    assert_eq!(
        serde_json::to_value(&file.engine).unwrap(),
        serde_json::to_value(&engine).unwrap()
    );

    let worker = WorkerSettings::from_sections(&file.sections)
        .unwrap()
        .apply(engine.deadline)
        .unwrap();
    let default = WorkerConfig::default();
    assert_eq!(worker.schedule.delays, default.schedule.delays);
    assert_eq!(worker.schedule.jitter, default.schedule.jitter);
    let pairs = [
        (worker.lease, default.lease),
        (worker.poll, default.poll),
        (worker.grace, default.grace),
    ];
    assert!(pairs.iter().all(|(a, b)| a == b), "{pairs:?}");
    assert_eq!(worker.concurrency, default.concurrency);
    assert_eq!(
        (worker.disable_after.failures, worker.disable_after.over),
        (default.disable_after.failures, default.disable_after.over)
    );
    assert_eq!((worker.retention, worker.dead_retention), (None, None));

    let server = ServerSettings::from_sections(&file.sections).unwrap();
    let mut config = ServeConfig::new("t");
    config.apply(&server);
    let default = ServeConfig::new("t");
    assert_eq!(config.max_body, default.max_body);
    assert_eq!(config.workers, default.workers);
    assert_eq!(config.idempotency.ttl, default.idempotency.ttl);
    assert_eq!(config.idempotency.field, None);
    assert_eq!(config.previews, PreviewLimits::default());
    assert_eq!(
        format!("{:?}", config.limits),
        format!("{:?}", default.limits)
    );
    assert_eq!(config.max_link_ttl, default.max_link_ttl);
    assert_eq!(
        (server.listen(), server.database()),
        ("127.0.0.1:8080", "lookout.db")
    );
    assert_eq!((&server.token_file, &server.metrics_listen), (&None, &None));

    let validated = common::stdout_of(lookout().args(["validate", "--config"]).arg(write(&text)));
    assert!(validated.contains("config is valid"), "{validated}");
}

fn write(text: &str) -> std::path::PathBuf {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let (_, path) = file.keep().unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Every key a table takes is in the document (set, or commented out with an example
/// that is itself valid).
#[test]
fn the_defaults_name_every_setting() {
    let file = load(&uncommented(&defaults()));
    let server = ServerSettings::from_sections(&file.sections).unwrap();
    let unset: Vec<String> = match serde_json::to_value(&server).unwrap() {
        Value::Object(keys) => keys
            .into_iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k)
            .collect(),
        _ => unreachable!(),
    };
    assert!(unset.is_empty(), "[server] keys missing: {unset:?}");

    let worker = WorkerSettings::from_sections(&file.sections).unwrap();
    let shown = format!("{worker:?}");
    assert!(!shown.contains("None"), "[worker] keys missing: {shown}");

    // The engine's table is read into its settings: its keys are counted in the text.
    let text = uncommented(&defaults());
    let table = text
        .split("[engine]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    let mut written: Vec<String> = table
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_owned()))
        .collect();
    let every = lookout::Settings {
        retry_budget: Some(Duration::from_secs(1)),
        proxy: Some("http://127.0.0.1:3128".parse().unwrap()),
        ..lookout::Settings::default()
    };
    let Value::Object(keys) = serde_json::to_value(&every).unwrap() else {
        unreachable!()
    };
    let mut expected: Vec<String> = keys.keys().cloned().collect();
    expected.sort();
    written.sort();
    assert_eq!(written, expected, "[engine] keys");
}

/// What a running `serve` does with the file's `[server]` table, flags over it.
#[test]
fn serve_reads_its_settings_from_the_file_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "file-token-0123456789abcdefXYZ").unwrap();
    let database = dir.path().join("from-file.db");
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\n{}\n[server]\nlisten = \"127.0.0.1:0\"\ndatabase = {:?}\n\
             token_file = {:?}\nmax_body = 64\n",
            common::test_engine_toml(),
            database.display().to_string(),
            token.display().to_string(),
        ),
    )
    .unwrap();
    let (mut serve, first) = common::spawn_reading_first_line(
        lookout().args(["serve", "--config"]).arg(&config),
        Duration::from_secs(20),
    );
    assert!(first.contains("from-file.db"), "{first}");
    let base = first
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let post = |body: String| {
        let base = base.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                reqwest::Client::new()
                    .post(format!("{base}/v1/products/p1/events"))
                    .bearer_auth("file-token-0123456789abcdefXYZ")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .join()
        .unwrap()
    };
    // The file's token opens the API, and its body limit holds.
    assert_eq!(post("x".repeat(65)), 413);
    common::stop_child(&mut serve);

    // A flag wins over the file.
    let elsewhere = dir.path().join("from-flag.db");
    let (mut serve, first) = common::spawn_reading_first_line(
        lookout()
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--database")
            .arg(&elsewhere),
        Duration::from_secs(20),
    );
    common::stop_child(&mut serve);
    assert!(first.contains("from-flag.db"), "{first}");
}

#[test]
fn validate_checks_the_server_table_and_names_the_setting() {
    for (table, path) in [
        (
            "[server]\nmax_body = 0\n",
            "[server] max_body: must be at least 1",
        ),
        ("[server]\nlisten_on = \"x\"\n", "listen_on"),
        (
            "[server]\ntrusted_proxies = [\"nope\"]\n",
            "[server] trusted_proxies",
        ),
        (
            "[server]\nheader_timeout = \"soon\"\n",
            "[server] header_timeout",
        ),
        ("[serve]\ntrusted_proxies = []\n", "now [server]"),
    ] {
        let output = lookout()
            .args(["validate", "--config"])
            .arg(write(table))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{table}: accepted");
        assert!(said.contains(path), "{table}: {said}");
    }
}
