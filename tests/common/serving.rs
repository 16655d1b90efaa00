//! `lookout serve` end to end: a temporary directory for its database and config
//! ([`Place`]), the running server ([`Serving`]), and waiting for what it does.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A temporary directory with a `lookout.db` and an `engine.toml`, where `lookout`
/// commands and `lookout serve` run.
pub struct Place {
    pub dir: tempfile::TempDir,
    /// The API token `serve` is given (`LOOKOUT_TOKEN`).
    token: &'static str,
    /// What no command may print.
    secrets: Vec<&'static str>,
}

impl Place {
    /// A fresh directory whose `engine.toml` is `config`; `serve` takes `token`.
    pub fn new(token: &'static str, config: &str) -> Place {
        let place = Place {
            dir: tempfile::tempdir().expect("temp dir"),
            token,
            secrets: Vec::new(),
        };
        place.write_config(config);
        place
    }

    /// From now on [`Place::cli`] panics when a command prints one of `secrets`.
    pub fn never_printing(mut self, secrets: &[&'static str]) -> Place {
        self.secrets.extend_from_slice(secrets);
        self
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("lookout.db")
    }

    /// The `engine.toml` that `serve` reads.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("engine.toml")
    }

    /// Replaces the `engine.toml` (for the next `serve`).
    pub fn write_config(&self, config: &str) {
        std::fs::write(self.config(), config).expect("write engine.toml");
    }

    /// A `lookout` command on this database.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lookout"));
        command
            .args(args)
            .arg("--database")
            .arg(self.db())
            .current_dir(self.dir.path());
        command
    }

    /// Runs a `lookout` command on this database.
    pub fn cli_output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run lookout")
    }

    /// Runs a `lookout` command on this database; panics if it fails or prints a
    /// secret ([`Place::never_printing`]).
    pub fn cli(&self, args: &[&str]) -> String {
        let text = super::stdout_of(&mut self.command(args));
        for secret in &self.secrets {
            assert!(!text.contains(secret), "a secret was printed:\n{text}");
        }
        text
    }

    /// [`Place::cli`] with `--json`, parsed.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.cli(&args)).expect("--json prints JSON")
    }

    /// Product `p1` with one webhook service, `hook`, sending to `url`, signed with
    /// `secret` when one is given.
    pub fn product(&self, url: &str, secret: Option<&str>) {
        let urls = format!("urls={url}");
        let mut args = vec!["products", "add", "p1", "hook", "--service", "webhook"];
        args.extend(["--set", &urls]);
        let secret = secret.map(|s| format!("secret={s}"));
        if let Some(secret) = &secret {
            args.extend(["--set", secret]);
        }
        self.cli(&args);
    }

    /// `lookout serve` on this database and its `engine.toml`, with `extra` arguments.
    pub fn serve(&self, extra: &[&str]) -> Serving {
        self.start(Command::new(env!("CARGO_BIN_EXE_lookout")), extra)
    }

    /// [`Place::serve`] with more environment variables (`OTEL_*`).
    pub fn serve_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Serving {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lookout"));
        command.envs(env.iter().copied());
        self.start(command, extra)
    }

    /// [`Place::serve`] under the open-file limit `open_files` (`ulimit -n`).
    pub fn serve_limited(&self, extra: &[&str], open_files: u32) -> Serving {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_lookout"));
        self.start(sh, extra)
    }

    fn start(&self, mut command: Command, extra: &[&str]) -> Serving {
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database"])
            .arg(self.db())
            .arg("--config")
            .arg(self.config())
            .args(extra)
            .env("LOOKOUT_TOKEN", self.token)
            .current_dir(self.dir.path())
            .stderr(Stdio::inherit());
        let (child, first) = super::spawn_reading_first_line(&mut command, Duration::from_secs(20));
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in `{first}`"))
            .to_owned();
        let addr = url
            .trim_start_matches("http://")
            .parse()
            .expect("an address");
        Serving { child, url, addr }
    }
}

/// A running `lookout serve`, killed when dropped.
pub struct Serving {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub addr: SocketAddr,
}

impl Serving {
    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then the exit (which must come within 20 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let stopped = self.terminate_within(Duration::from_secs(20));
        assert!(stopped.is_some(), "serve did not stop on SIGTERM");
        self.child.wait().expect("reap")
    }

    /// SIGTERM; the time until it exited, or `None` if it had not within `wait`.
    pub fn terminate_within(&mut self, wait: Duration) -> Option<Duration> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let started = Instant::now();
        while started.elapsed() < wait {
            if self.child.try_wait().expect("try_wait").is_some() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A raw connection with short read/write timeouts.
    pub fn connect(&self) -> TcpStream {
        let stream =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(1)))
            .expect("write timeout");
        stream
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        super::stop_child(&mut self.child);
    }
}

/// Waits until `check` holds, up to `timeout`; panics naming `what` if it never does.
pub fn wait_until(timeout: Duration, what: &str, check: impl FnMut() -> bool) {
    assert!(settles(timeout, check), "timed out waiting for {what}");
}

/// Whether `check` comes to hold within `timeout`.
pub fn settles(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !check() {
        if started.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}
