//! The real brokers: started on free loopback ports in their own folder and process
//! group, probed until ready, killed (the whole group, SIGKILL: a crash, not a shutdown)
//! and started again on the same port by the tests, and stopped at the end.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::CANARY;

/// The user name every broker knows Lookout by (with [`CANARY`] as its password).
pub const USER: &str = "lookout";

/// How a server says it is ready.
enum Probe {
    /// Its port accepts connections.
    Tcp,
    /// `GET path` on this port answers 200.
    Http(u16, &'static str),
}

/// One broker process (and the folder it works in).
pub struct Server {
    name: &'static str,
    program: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    dir: PathBuf,
    pub port: u16,
    probe: Probe,
    startup: Duration,
    child: Option<Child>,
}

impl Server {
    fn new(name: &'static str, program: &'static str, startup: Duration) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "lookout-broker-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Server {
            name,
            program,
            args: Vec::new(),
            env: Vec::new(),
            dir,
            port: free_port(),
            probe: Probe::Tcp,
            startup,
            child: None,
        }
    }

    /// Starts it (again, on the same port) and waits until it is ready.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("console.log"))
            .unwrap();
        let child = Command::new(self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own group: killing the group takes the broker's children too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run `bash scripts/test-deps.sh`",
                    self.program
                )
            });
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        while started.elapsed() < self.startup {
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.logs()
                );
            }
            if self.ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} not ready within {:?}:\n{}",
            self.name,
            self.startup,
            self.logs()
        );
    }

    fn ready(&self) -> bool {
        match self.probe {
            Probe::Tcp => accepts(self.port),
            Probe::Http(port, path) => http_ok(port, path),
        }
    }

    /// Kills it, as a crash would (SIGKILL to its whole process group), and waits until
    /// its port is closed.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while accepts(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every server started so far, by name.
fn servers() -> MutexGuard<'static, HashMap<&'static str, Server>> {
    static SERVERS: LazyLock<Mutex<HashMap<&'static str, Server>>> = LazyLock::new(Mutex::default);
    SERVERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The port of the server `name`, started (by `make`) at first use.
fn port_of(name: &'static str, make: fn() -> Vec<Server>) -> u16 {
    if let Some(server) = servers().get(name) {
        return server.port;
    }
    let mut started = make();
    for server in &mut started {
        server.start();
    }
    let port = started.last().unwrap().port;
    let mut all = servers();
    for server in started {
        all.insert(server.name, server);
    }
    port
}

/// Kills the server `name` (see [`Server::kill`]).
pub fn kill(name: &str) {
    servers().get_mut(name).unwrap().kill();
}

/// Starts the server `name` again, on the same port.
pub fn restart(name: &str) {
    servers().get_mut(name).unwrap().start();
}

/// Stops every server and removes their folders.
pub fn stop_all() {
    // RabbitMQ before the epmd it registered with.
    let mut all = servers();
    all.remove("rabbitmq");
    all.clear();
}

/// RabbitMQ (AMQP on the returned port), with [`USER`]/[`CANARY`] as its default user.
pub fn rabbitmq() -> u16 {
    port_of("rabbitmq", || {
        let mut epmd = Server::new("epmd", "/usr/bin/epmd", Duration::from_secs(5));
        epmd.args = vec![
            "-port".into(),
            epmd.port.to_string(),
            "-address".into(),
            "127.0.0.1".into(),
        ];
        let mut rabbit = Server::new(
            "rabbitmq",
            "/usr/lib/rabbitmq/bin/rabbitmq-server",
            Duration::from_secs(60),
        );
        let dir = rabbit.dir.display().to_string();
        std::fs::write(rabbit.dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(
            rabbit.dir.join("rabbitmq.conf"),
            format!("default_user = {USER}\ndefault_pass = {CANARY}\nloopback_users = none\n"),
        )
        .unwrap();
        let port = rabbit.port;
        rabbit.env = vec![
            // As root, /usr/sbin/rabbitmq-server re-runs itself as another user; this one
            // does not. Its own HOME holds the Erlang cookie.
            ("HOME", dir.clone()),
            ("RABBITMQ_NODENAME", format!("lookout{port}@localhost")),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", port.to_string()),
            ("RABBITMQ_DIST_PORT", free_port().to_string()),
            ("RABBITMQ_MNESIA_BASE", format!("{dir}/mnesia")),
            ("RABBITMQ_LOG_BASE", format!("{dir}/log")),
            ("RABBITMQ_CONFIG_FILE", format!("{dir}/rabbitmq.conf")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{dir}/enabled_plugins"),
            ),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
            ("ERL_EPMD_PORT", epmd.port.to_string()),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".into(),
            ),
        ];
        vec![epmd, rabbit]
    })
}

/// Mosquitto (MQTT on the returned port), with [`USER`]/[`CANARY`] its only login.
pub fn mosquitto() -> u16 {
    port_of("mosquitto", || {
        let mut mosquitto =
            Server::new("mosquitto", "/usr/sbin/mosquitto", Duration::from_secs(10));
        let passwd = mosquitto.dir.join("passwd");
        let made = Command::new("/usr/bin/mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwd)
            .args([USER, CANARY])
            .status()
            .expect("mosquitto_passwd");
        assert!(made.success());
        // As root, Mosquitto would switch to its own user, who cannot read this folder.
        let config = format!(
            "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\nuser root\n",
            mosquitto.port,
            passwd.display()
        );
        std::fs::write(mosquitto.dir.join("mosquitto.conf"), config).unwrap();
        mosquitto.args = vec!["-c".into(), "mosquitto.conf".into()];
        vec![mosquitto]
    })
}

/// NATS with JetStream (client port returned), stored in its folder (a restart keeps the
/// streams), with [`USER`]/[`CANARY`] its only login.
pub fn nats() -> u16 {
    port_of("nats", || {
        let mut nats = Server::new("nats", "/usr/sbin/nats-server", Duration::from_secs(10));
        let monitor = free_port();
        nats.args = [
            "-a",
            "127.0.0.1",
            "-p",
            &nats.port.to_string(),
            "-m",
            &monitor.to_string(),
            "-js",
            "-sd",
            "jetstream",
            "--user",
            USER,
            "--pass",
            CANARY,
        ]
        .map(str::to_owned)
        .to_vec();
        nats.probe = Probe::Http(monitor, "/healthz?js-enabled-only=true");
        vec![nats]
    })
}

/// Redis (port returned), with [`CANARY`] as the default user's password.
pub fn redis() -> u16 {
    port_of("redis", || {
        let mut redis = Server::new("redis", "/usr/bin/redis-server", Duration::from_secs(10));
        redis.args = [
            "--port",
            &redis.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            ".",
            "--requirepass",
            CANARY,
        ]
        .map(str::to_owned)
        .to_vec();
        vec![redis]
    })
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Whether `GET path` on `port` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}
