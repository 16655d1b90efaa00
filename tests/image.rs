//! The container image (deploy/image/Containerfile, built by scripts/image.sh with
//! Debian's podman and a base image made from Debian's mirror): it runs as its own
//! unprivileged user, keeps its store in the /data volume, passes its health check, and
//! the `lookout serve` inside it delivers an event to a sink on the host's loopback.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lookout_testkit::CaptureServer;

const IMAGE: &str = "localhost/lookout-test:latest";
const TOKEN: &str = "image-test-token-3b9f0e6c7a1d2854";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// podman as it runs on this kind of host (see scripts/image.sh).
fn podman(conf: &Path) -> Command {
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", conf).args([
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
    ]);
    command
}

fn succeeded(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Removes the container when the test ends, passed or not.
struct Container<'a> {
    id: String,
    conf: &'a Path,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = podman(self.conf).args(["rm", "--force", &self.id]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_serves_and_delivers_as_an_unprivileged_user() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("containers.conf");
    std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
    let built = Command::new("bash")
        .arg(repo().join("scripts/image.sh"))
        .arg(env!("CARGO_BIN_EXE_lookout"))
        .env("IMAGE", IMAGE)
        .env("CONTAINERS_CONF", &conf)
        .current_dir(repo())
        .output()
        .expect("bash scripts/image.sh (make test-deps installs podman and mmdebstrap)");
    succeeded(built, "scripts/image.sh");

    let inspected = podman(&conf)
        .args(["image", "inspect", IMAGE, "--format"])
        .arg("{{.Config.User}} {{json .Config.Volumes}} {{json .Config.Healthcheck.Test}}")
        .output()
        .unwrap();
    let inspected = succeeded(inspected, "podman image inspect");
    assert!(inspected.starts_with("10001:10001 "), "{inspected}");
    assert!(inspected.contains("\"/data\""), "{inspected}");
    assert!(inspected.contains("/healthz"), "{inspected}");

    // The host's loopback is the container's (--network=host): the sink and the API.
    let sink = CaptureServer::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!("[engine]\n{}\n", common::test_engine_toml()),
    )
    .unwrap();
    let started = podman(&conf)
        .args(["run", "--detach", "--network=host", "--env"])
        .arg(format!("LOOKOUT_TOKEN={TOKEN}"))
        .arg("--env")
        .arg(format!("LOOKOUT_HEALTH_PORT={port}"))
        .arg("--volume")
        .arg(format!("{}:/etc/lookout/lookout.toml:ro", config.display()))
        .arg(IMAGE)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--database",
            "/data/lookout.db",
            "--config",
            "/etc/lookout/lookout.toml",
        ])
        .output()
        .unwrap();
    let container = Container {
        id: succeeded(started, "podman run"),
        conf: &conf,
    };

    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let waited = Instant::now();
    while !http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "serve never answered /healthz"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let product = serde_json::json!({
        "services": { "hook": { "service": "webhook", "urls": [format!("{}/in", sink.url())] } }
    });
    let put = http
        .put(format!("{base}/v1/products/p1"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(product.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let item = std::fs::read_to_string(repo().join("lookout/samples/item.json")).unwrap();
    let posted = http
        .post(format!("{base}/v1/products/p1/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(item)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let arrived = sink.wait_for(1, Duration::from_secs(30));
    assert_eq!(arrived.len(), 1, "the event reached the sink on the host");

    // Inside: its own user, its store in the volume, and the image's health check.
    let inside = |args: &[&str]| {
        let output = podman(&conf)
            .args(["exec", &container.id])
            .args(args)
            .output()
            .unwrap();
        succeeded(output, &args.join(" "))
    };
    assert_eq!(inside(&["id", "-u"]), "10001");
    assert!(inside(&["ls", "/data"]).contains("lookout.db"));
    let health = podman(&conf)
        .args(["healthcheck", "run", &container.id])
        .output()
        .unwrap();
    succeeded(health, "podman healthcheck run");
}
