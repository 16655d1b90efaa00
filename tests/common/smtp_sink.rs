//! `tests/smtp_sink.py`, a real SMTP server (aiosmtpd, from PyPI, in `.venv/`, installed
//! by `make test-deps`) on 127.0.0.1, and what it receives as Python's standard `email`
//! parser reads it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::Value;

/// How long a helper server may take to start, or a message to arrive.
const PATIENCE: Duration = Duration::from_secs(20);

/// `tests/smtp_sink.py` running; killed when dropped.
pub struct Sink {
    child: Child,
    pub port: u16,
    lines: Receiver<String>,
}

impl Sink {
    /// Starts the sink in `mode` and waits (bounded) for its `listening on PORT` line.
    pub fn start(args: &[&str]) -> Sink {
        let python = venv().join("bin/python");
        let mut child = Command::new(&python)
            .arg(root().join("tests/smtp_sink.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python:?} ({e}): run `make test-deps` (it installs aiosmtpd)")
            });
        let (send, lines) = channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sink = Sink {
            child,
            port: 0,
            lines,
        };
        let ready = sink
            .next_line()
            .expect("the sink did not say it was listening");
        sink.port = ready
            .strip_prefix("listening on ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("not a ready line: {ready}"));
        sink
    }

    /// The next line the sink prints, waiting at most [`PATIENCE`].
    pub fn next_line(&self) -> Option<String> {
        self.lines.recv_timeout(PATIENCE).ok()
    }

    /// The header fields of the next message received, as Python's parser decoded them.
    pub fn next_message(&self) -> Value {
        let line = self.next_line().expect("no message arrived");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Whatever the sink printed so far (it should be nothing after a refused handshake).
    pub fn printed_so_far(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn venv() -> PathBuf {
    std::env::var_os("LOOKOUT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"))
}
