//! The errbot service against a real Errbot: Errbot 6 from `.venv/` (installed by
//! `make test-deps`) runs on 127.0.0.1 with its Null backend, its Webserver plugin and the
//! recording plugin in `tests/errbot/`. Every fixture goes through the engine to it in
//! both formats, and what the plugin's `@webhook` handlers received, as Errbot decoded it,
//! must be the fixture itself, with the token header.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lookout::{Engine, Event, Instance};
use serde_json::{Value, json};

const TOKEN: &str = "errbot-test-token-8c41f0";

/// How long Errbot may take to start serving (it usually needs 2–3 s).
const STARTUP: Duration = Duration::from_secs(20);

/// A running Errbot, stopped (and its folder removed) when dropped, even when the test
/// fails.
struct Errbot {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Errbot {
    fn start() -> Errbot {
        let errbot = errbot_binary();
        let dir = scratch_dir();
        let port = free_port();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("config.py"), config_py(&dir)).unwrap();
        seed_webserver_config(&errbot, &dir, port);

        let log = std::fs::File::create(dir.join("console.log")).unwrap();
        let child = Command::new(&errbot)
            .arg("-c")
            .arg(dir.join("config.py"))
            .env("LOOKOUT_ERRBOT_RECORD", dir.join("record.jsonl"))
            .env("LOOKOUT_ERRBOT_READY", dir.join("ready"))
            // Keep tests/errbot/ free of __pycache__.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start errbot");
        let mut bot = Errbot { child, dir, port };
        bot.wait_until_ready();
        bot
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The plugin writes `ready` once its webhooks are routed; no request may reach the
    /// web server before that (Flask stops taking routes after its first request). Then
    /// a `@webhook` route answers GET by calling the handler, so the route is probed with
    /// PUT, which Errbot's web server answers 405 once it exists.
    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        while started.elapsed() < STARTUP {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("errbot exited ({status}) before serving:\n{}", self.logs());
            }
            let routed = self.dir.join("ready").exists();
            if routed && status_of_put(self.port, "/sprintly") == Some(405) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "errbot did not serve /sprintly within {STARTUP:?}:\n{}",
            self.logs()
        );
    }

    /// What the recording plugin received, one JSON object per request.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("record.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a recorded line"))
            .collect()
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}\n{}", read("console.log"), read("errbot.log"))
    }
}

impl Drop for Errbot {
    fn drop(&mut self) {
        // SIGTERM makes Errbot shut down cleanly; kill it if it has not within 5 s.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `.venv/bin/errbot` (or under `$LOOKOUT_VENV`). Missing is a failure, not a skip: this
/// test is how we know the service works with a real Errbot.
fn errbot_binary() -> PathBuf {
    let venv = std::env::var_os("LOOKOUT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    let errbot = venv.join("bin/errbot");
    assert!(
        errbot.exists(),
        "Errbot is not installed ({} is missing): run `make test-deps`",
        errbot.display()
    );
    errbot
}

fn scratch_dir() -> PathBuf {
    let unique = format!(
        "errbot-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_py(dir: &Path) -> String {
    let plugins = root().join("tests/errbot");
    format!(
        r#"import logging
BACKEND = "Null"
BOT_DATA_DIR = r"{data}"
BOT_EXTRA_PLUGIN_DIR = r"{plugins}"
BOT_LOG_FILE = r"{log}"
BOT_LOG_LEVEL = logging.INFO
BOT_ADMINS = ("@admin",)
CORE_PLUGINS = ("ACLs", "Health", "Help", "Plugins", "Utils", "Webserver")
"#,
        data = dir.join("data").display(),
        plugins = plugins.display(),
        log = dir.join("errbot.log").display(),
    )
}

/// The Webserver plugin starts only once configured; with no chat to type
/// `!plugin config Webserver …` into, its configuration is merged into the bot's storage
/// before start. `PORT` must be an integer and `HOST` must be set (it defaults to 0.0.0.0).
fn seed_webserver_config(errbot: &Path, dir: &Path, port: u16) {
    let mut merge = Command::new(errbot)
        .arg("-c")
        .arg(dir.join("config.py"))
        .args(["--storage-merge", "core"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run errbot --storage-merge");
    let config = format!(
        "{{'configs': {{'Webserver': {{'HOST': '127.0.0.1', 'PORT': {port}, 'SSL': None}}}}}}"
    );
    merge
        .stdin
        .take()
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let output = merge.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "errbot --storage-merge failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The status code of a bodiless PUT, or `None` while nothing answers.
fn status_of_put(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

fn errbot_instance(url: &str, format: &str) -> Instance {
    let options = json!({"url": url, "format": format, "token": TOKEN});
    Instance::new("errbot", "errbot", options.as_object().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_errbot_receives_every_payload_in_both_formats() {
    let bot = Errbot::start();
    let engine = Engine::with_settings(common::test_settings()).unwrap();
    let fixtures = common::fixtures();
    let routes = [("json", "/sprintly"), ("form", "/sprintly/form")];

    let mut sent = Vec::new();
    for (format, path) in routes {
        let instance = errbot_instance(&bot.url(path), format);
        for (name, json) in &fixtures {
            let event = Event::parse(json).unwrap();
            let report = engine
                .dispatch_to(&event, std::slice::from_ref(&instance))
                .await;
            let shown = serde_json::to_string(&report).unwrap();
            assert!(
                !report.has_failures(),
                "{format} × {name}: {shown}\n{}",
                bot.logs()
            );
            assert!(!shown.contains(TOKEN), "the token leaked: {shown}");
            sent.push((format, name, json));
        }
    }

    // Deliveries were awaited one by one, and the plugin records before it answers, so
    // the record is in sending order.
    let received = bot.received();
    assert_eq!(received.len(), sent.len(), "received: {received:#?}");
    for ((format, name, json), got) in sent.iter().zip(&received) {
        let context = format!("{format} × {name}");
        let content_type = match *format {
            "json" => "application/json",
            _ => "application/x-www-form-urlencoded",
        };
        assert_eq!(got["route"], *format, "{context}: handler");
        assert_eq!(got["content_type"], content_type, "{context}");
        assert_eq!(got["token"], TOKEN, "{context}: token header");
        let fixture: Value = serde_json::from_str(json).unwrap();
        assert_eq!(got["payload"], fixture, "{context}: decoded payload");
    }
}
