//! Helpers shared by the integration tests: fixtures, example options, and options
//! pointed at a local capture server.
#![allow(dead_code)] // each test crate uses a different part

pub mod serving;
pub mod smtp_sink;

use lookout::options::Kind;
use lookout::{Instance, Registration, Settings};
use serde_json::{Map, Value};
// Links every service into the test binary.
use services as _;

/// Every fixture payload, `(name, json)`, sorted by name.
pub fn fixtures() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = lookout_testkit::fixture_names()
        .into_iter()
        .map(|name| {
            let json = lookout_testkit::fixture_json(&name);
            (name, json)
        })
        .collect();
    all.sort();
    all
}

#[allow(unused_imports)]
pub use lookout_testkit::fixture;

/// The service's example options (its `example()` TOML) as a JSON table.
pub fn example_options(reg: &Registration) -> Map<String, Value> {
    let table: toml::Table = toml::from_str(reg.example)
        .unwrap_or_else(|e| panic!("{}: example() is not valid TOML: {e}", reg.name()));
    serde_json::to_value(table)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

pub fn instance(reg: &Registration, options: &Map<String, Value>) -> Instance {
    Instance::new(reg.name(), reg.name(), options)
        .unwrap_or_else(|problems| panic!("{}: options rejected: {problems:?}", reg.name()))
}

/// The example options with every URL option (example or default value) moved to
/// `base` (`http://127.0.0.1:PORT`), path and query kept.
pub fn pointed_at(reg: &Registration, base: &str) -> Map<String, Value> {
    let mut options = example_options(reg);
    for spec in reg.schema.options {
        let current = options
            .get(spec.name)
            .cloned()
            .or_else(|| spec.default.map(Value::from));
        let moved = match (spec.kind, current) {
            (Kind::Url, Some(Value::String(url))) => Value::from(move_url(&url, base)),
            (Kind::UrlList, Some(Value::Array(urls))) => Value::Array(
                urls.iter()
                    .filter_map(Value::as_str)
                    .map(|u| Value::from(move_url(u, base)))
                    .collect(),
            ),
            (Kind::UrlList, Some(Value::String(url))) => Value::from(vec![move_url(&url, base)]),
            _ => continue,
        };
        options.insert(spec.name.to_owned(), moved);
    }
    options
}

fn move_url(url: &str, base: &str) -> String {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("example URL {url}: {e}"));
    let mut moved = format!("{base}{}", parsed.path());
    if let Some(query) = parsed.query() {
        moved.push('?');
        moved.push_str(query);
    }
    moved
}

/// Settings for tests: short deadlines so a hung target costs little
/// ([`lookout_testkit::settings`], the one place they are decided).
pub fn test_settings() -> Settings {
    lookout_testkit::settings()
}

/// The `[engine]` lines tests put in config files (short timeouts).
pub fn test_engine_toml() -> String {
    format!(
        "{}\ndeadline = \"5s\"\nrequest_timeout = \"4s\"",
        test_engine_toml_without_timeouts()
    )
}

/// [`test_engine_toml`] without the timeouts, for tests that set their own.
pub fn test_engine_toml_without_timeouts() -> String {
    // The capture server is on loopback, which the SSRF guard refuses by default; tests
    // reach nothing else.
    "loopback_only = true\nrate_limits = false".to_owned()
}

/// The `engine` object of a JSON config.
pub fn test_engine_json() -> String {
    r#"{"deadline": "5s", "loopback_only": true, "rate_limits": false}"#.to_owned()
}

/// The engine gives each dispatch a fresh delivery id (`msg_` and 32 hex digits); services
/// that put it in the URL (Matrix transaction ids) or the body (SQS and SNS message
/// attributes) are built in tests with `msg_test`:
/// this puts `msg_test` in place of every such id in `text`.
pub fn with_test_delivery_id(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("msg_") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 4..];
        let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex == 32 {
            out.push_str("msg_test");
            rest = &after[32..];
        } else {
            out.push_str("msg_");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Runs `command` (a `lookout` command); panics with what it printed on stderr unless it
/// succeeds; what it printed on stdout.
pub fn stdout_of(command: &mut std::process::Command) -> String {
    let output = command.output().expect("run lookout");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts a long-running `lookout` command (`serve`, `worker`) with its stdout piped, and
/// waits up to `wait` for the first line it prints (where it listens, who it is). The
/// rest of its output is drained in the background so it never blocks on a full pipe.
pub fn spawn_reading_first_line(
    command: &mut std::process::Command,
    wait: std::time::Duration,
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start lookout");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(wait)
        .unwrap_or_else(|_| panic!("{command:?} printed nothing within {wait:?}"));
    (child, first)
}

/// Stops a child process the test started, if it is still running, and reaps it.
pub fn stop_child(child: &mut std::process::Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Whether requests arriving at `arrivals` kept a pace of `burst` at once, then one
/// every `every` (the generic cell rate algorithm, as a platform counts), allowing each
/// arrival `jitter` of lateness on the wire.
pub fn keeps_pace(
    arrivals: &[std::time::Instant],
    every: std::time::Duration,
    burst: u32,
    jitter: std::time::Duration,
) -> Result<(), String> {
    let tolerance = every * burst.saturating_sub(1) + jitter;
    let Some(first) = arrivals.first() else {
        return Ok(());
    };
    let mut tat = *first;
    for (n, at) in arrivals.iter().enumerate() {
        if tat > *at + tolerance {
            let early = tat - (*at + tolerance);
            return Err(format!("request {n} came {early:?} before its slot"));
        }
        tat = tat.max(*at) + every;
    }
    Ok(())
}

/// `text` between `start` and the next `end` (panics, showing `text`, without them).
pub fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in:\n{text}"))
        + start.len();
    let to = text[from..].find(end).expect("the end") + from;
    &text[from..to]
}

/// The `name=value` of the cookie `name` that an answer sets, if it sets one.
pub fn set_cookie(answer: &reqwest::Response, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&prefix))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// A client for `serve`'s API on loopback: no proxy from the environment, and a timeout
/// so that a test waiting on an answer fails instead of hanging.
pub fn api_client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// Every log line of this test binary, at every level: the first test that asks installs
/// a subscriber writing into the buffer returned (the same one to every later caller).
pub fn captured_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buffer
    })
    .clone()
}

struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
