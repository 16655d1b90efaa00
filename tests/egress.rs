//! Egress through `[engine] proxy`: a tiny HTTP proxy on loopback (written here with
//! tokio) sees every request, and the SSRF guard still checks each final target before
//! anything is handed to the proxy.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use lookout::{Config, Engine, Outcome, Settings};
use lookout_testkit::CaptureServer;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A forwarding HTTP proxy for absolute-form requests, to loopback targets only.
struct LoopbackProxy {
    addr: SocketAddr,
    /// The request line of every request it got.
    seen: Arc<Mutex<Vec<String>>>,
}

impl LoopbackProxy {
    async fn start() -> LoopbackProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, log.clone()));
            }
        });
        LoopbackProxy { addr, seen }
    }

    fn url(&self) -> url::Url {
        format!("http://{}", self.addr).parse().unwrap()
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request, sends it on to its (loopback) target with `Connection: close`,
/// and copies the answer back.
async fn forward(client: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut client = BufReader::new(client);
    let mut line = String::new();
    if client.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    seen.lock().unwrap().push(line.trim_end().to_owned());
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut header = String::new();
        client.read_line(&mut header).await.unwrap();
        let header = header.trim_end().to_owned();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") && !lower.starts_with("proxy-") {
            headers.push(header);
        }
    }
    let mut body = vec![0; length];
    client.read_exact(&mut body).await.unwrap();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
    let target = url::Url::parse(target).unwrap();
    let loopback = matches!(target.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback());
    let mut client = client.into_inner();
    if !loopback {
        // Never reaches past this machine, whatever it is asked.
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    let upstream = format!("{}:{}", target.host_str().unwrap(), target.port().unwrap());
    let mut upstream = TcpStream::connect(upstream).await.unwrap();
    let path = &target[url::Position::BeforePath..url::Position::AfterQuery];
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for header in headers {
        head.push_str(&header);
        head.push_str("\r\n");
    }
    head.push_str("connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).await.unwrap();
    upstream.write_all(&body).await.unwrap();
    let _ = tokio::io::copy(&mut upstream, &mut client).await;
    let _ = client.shutdown().await;
}

async fn send(url: &str, settings: Settings) -> Outcome {
    let text = format!("[services.webhook]\nurls = [\"{url}\"]\n");
    let mut config = Config::parse(&text, "test").unwrap();
    config.engine = settings;
    let report = Engine::new(config)
        .unwrap()
        .dispatch(&common::fixture("item"))
        .await;
    report.results[0].delivery.outcome.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_through_the_proxy() {
    let target = CaptureServer::start();
    let proxy = LoopbackProxy::start().await;
    let settings = Settings {
        proxy: Some(proxy.url()),
        ..common::test_settings()
    };
    let outcome = send(&format!("{}/hook", target.url()), settings).await;
    assert_eq!(outcome, Outcome::Delivered { status: 200 });
    assert_eq!(
        proxy.seen(),
        [format!("POST {}/hook HTTP/1.1", target.url())]
    );
    let arrived = target.requests_to("/hook");
    assert_eq!(arrived.len(), 1, "the proxy passed it on");
    assert_eq!(arrived[0].json()["model"], "Item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_checks_the_final_target_before_the_proxy() {
    let proxy = LoopbackProxy::start().await;
    // The tests' guard: nothing but loopback; a public name is not even looked up.
    let loopback_only = Settings {
        proxy: Some(proxy.url()),
        ..common::test_settings()
    };
    let outcome = send("http://example.com/hook", loopback_only).await;
    let Outcome::Failed { reason, .. } = outcome else {
        panic!("not refused: {outcome:?}");
    };
    assert!(reason.starts_with("blocked: example.com"), "{reason}");

    // The default guard: a name that resolves to a loopback address is refused too,
    // though the proxy (an address given as such) is reached.
    let default_guard = Settings {
        proxy: Some(proxy.url()),
        loopback_only: false,
        allow_networks: Vec::new(),
        ..common::test_settings()
    };
    let outcome = send("http://localhost:9/hook", default_guard).await;
    let Outcome::Failed { reason, .. } = outcome else {
        panic!("not refused: {outcome:?}");
    };
    assert!(reason.contains("loopback"), "{reason}");
    assert!(proxy.seen().is_empty(), "nothing was handed to the proxy");
}

/// `lookout worker --metrics-listen` serves `/metrics` and `/healthz` (PostgreSQL: a
/// worker needs a shared database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_metrics() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let schema = lookout_testkit::postgres::TestSchema::create().await;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap().to_string();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    let engine = dir.path().join("engine.toml");
    let text = format!("[engine]\n{}\n", common::test_engine_toml());
    std::fs::write(&engine, text).unwrap();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args([
            "worker",
            "--database",
            &schema.url,
            "--metrics-listen",
            &address,
        ])
        .arg("--config")
        .arg(&engine)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let text = loop {
        let scraped = reqwest::get(format!("http://{address}/metrics")).await;
        if let Ok(response) = scraped {
            assert_eq!(response.status(), 200);
            break response.text().await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no /metrics");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The probe a supervisor uses: the worker's store commits.
    let health = reqwest::get(format!("http://{address}/healthz"))
        .await
        .unwrap();
    let healthy = (health.status().as_u16(), health.text().await.unwrap());
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(healthy, (200, "ok\n".to_owned()));
    assert!(text.contains("lookout_queue_depth 0"), "{text}");
    assert!(text.contains("# TYPE lookout_targets_disabled_total counter"));
    schema.drop_schema().await;
}
