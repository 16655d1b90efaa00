//! `lookout serve` against a hostile network and hostile targets (issue 13): slow and
//! half-sent requests, running out of file descriptors, SIGTERM with a client holding a
//! request open, targets that echo secrets or write terminal escapes. The real binary,
//! on loopback only; every loop is bounded in count and time.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::serving::{Place, Serving, wait_until};
use lookout_testkit::{CaptureServer, Reply};
use serde_json::Value;

const TOKEN: &str = "hardening-token-5f1c0e9a7b3d2468";

/// The `engine.toml` of every place here: loopback allowed, short timeouts.
const ENGINE: &str = "[engine]\nrequest_timeout = \"3s\"\ndeadline = \"4s\"\nallow_networks = [\"127.0.0.0/8\"]\nrate_limits = false\n";

fn place() -> Place {
    Place::new(TOKEN, ENGINE)
}

/// One HTTP request to the server, on a runtime of its own: the status and the body.
fn request(build: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let response = build(&client).send().await.expect("answered");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

fn item_event() -> String {
    lookout::samples::ALL[0].1.to_owned()
}

/// Posts the item sample for `p1`; the status.
fn post_event(serving: &Serving) -> u16 {
    let url = format!("{}/v1/products/p1/events", serving.url);
    request(|client| {
        client
            .post(url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(item_event())
    })
    .0
}

/// Reads from `stream` until the server closes it or `wait` passes: what it sent, and
/// whether it closed.
fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (String, bool) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < wait {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&received).into_owned(), false)
}

fn statuses(place: &Place) -> Vec<String> {
    let listed = place.cli_json(&["deliveries", "list", "--limit", "0"]);
    listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| d["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

const HALF_HEAD: &str = "POST /v1/products/p1/events HTTP/1.1\r\nHost: x\r\nX-Slow: ";

#[test]
fn slow_and_half_sent_requests_are_cut_off_while_normal_ones_get_through() {
    let place = place();
    let target = CaptureServer::start();
    place.product(&format!("{}/in", target.url()), None);
    let serving = place.serve(&[
        "--header-timeout",
        "1s",
        "--body-timeout",
        "1s",
        "--idle-timeout",
        "3s",
    ]);

    // Nothing sent at all, half a request head, and a trickled head.
    let mut silent = serving.connect();
    let mut half_head = serving.connect();
    half_head.write_all(HALF_HEAD.as_bytes()).expect("write");
    let mut trickle = serving.connect();
    // Half a body: the head promises 1,000 bytes, 10 come.
    let mut half_body = serving.connect();
    let head = format!(
        "POST /v1/products/p1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\":"
    );
    half_body.write_all(head.as_bytes()).expect("write");

    let started = Instant::now();
    for _ in 0..4 {
        // A byte now and then: a slowloris head that never ends.
        let _ = trickle.write_all(b"a");
        std::thread::sleep(Duration::from_millis(300));
    }
    // Meanwhile an ordinary POST is accepted.
    assert_eq!(post_event(&serving), 202);

    let (answer, closed) = read_until_closed(&mut half_body, Duration::from_secs(5));
    assert!(closed, "a half-sent body held its connection: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    for (name, stream) in [
        ("a half-sent head", &mut half_head),
        ("a trickled head", &mut trickle),
        ("a silent connection", &mut silent),
    ] {
        let (answer, closed) = read_until_closed(stream, Duration::from_secs(8));
        assert!(closed, "{name} held its connection: {answer:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));

    // A head larger than the limit is refused, not buffered.
    let mut huge = serving.connect();
    let long_header = format!("{HALF_HEAD}{}\r\n\r\n", "x".repeat(64 * 1024));
    let _ = huge.write_all(long_header.as_bytes());
    let (answer, closed) = read_until_closed(&mut huge, Duration::from_secs(5));
    assert!(closed, "an oversized head held its connection");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:?}"
    );
}

#[test]
fn sigterm_with_a_half_sent_request_exits_within_the_grace_period() {
    let place = place();
    let target = CaptureServer::start();
    place.product(&format!("{}/in", target.url()), None);
    let mut serving = place.serve(&["--grace", "2s", "--header-timeout", "60s"]);
    assert_eq!(post_event(&serving), 202);
    target.wait_for(1, Duration::from_secs(10));

    let mut half_head = serving.connect();
    half_head.write_all(HALF_HEAD.as_bytes()).expect("write");
    let mut half_body = serving.connect();
    let head = format!(
        "POST /v1/products/p1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 1000\r\n\r\n{{"
    );
    half_body.write_all(head.as_bytes()).expect("write");
    std::thread::sleep(Duration::from_millis(200));

    let took = serving.terminate_within(Duration::from_secs(8));
    assert!(
        took.is_some_and(|took| took < Duration::from_secs(6)),
        "serve did not exit within grace (2s) + a few seconds: {took:?}"
    );
    // Nothing accepted was lost.
    assert_eq!(statuses(&place), ["delivered"]);
}

/// Idle connections to hold: more than the open-file limit the server runs under.
const IDLE_CONNECTIONS: usize = 1100;
const OPEN_FILE_LIMIT: u32 = 1024;

/// Opens up to [`IDLE_CONNECTIONS`] connections that send nothing (within 10 s).
fn hold_idle_connections(addr: SocketAddr) -> Vec<TcpStream> {
    let started = Instant::now();
    let mut held = Vec::new();
    while held.len() < IDLE_CONNECTIONS && started.elapsed() < Duration::from_secs(10) {
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            held.push(stream);
        }
    }
    held
}

/// The first `n` requests to `/in` fail (503), the rest are delivered; every answer
/// closes its connection, so that each retry needs a new one (a file descriptor).
fn failing_first(target: &CaptureServer, n: usize) {
    let close = |reply: Reply| reply.header("connection", "close");
    let failing = std::iter::repeat_n(close(Reply::status(503)), n);
    target.script("/in", failing.chain([close(Reply::ok())]));
}

#[test]
fn more_idle_connections_than_open_files_neither_stop_intake_nor_kill_deliveries() {
    let place = place();
    let target = CaptureServer::start();
    // Each delivery's first attempt fails; its retries come while the connections are held.
    failing_first(&target, 5);
    place.product(&format!("{}/in", target.url()), None);
    // One address stands for many clients here: the cap on the whole is tested, not an
    // address's share of it (tests/request_path.rs).
    let serving = place.serve_limited(
        &[
            "--retry-schedule",
            "1s,1s,1s",
            "--retry-jitter",
            "0",
            "--header-timeout",
            "4s",
            "--max-connections-per-client",
            "5000",
        ],
        OPEN_FILE_LIMIT,
    );
    for _ in 0..5 {
        assert_eq!(post_event(&serving), 202);
    }
    let held = hold_idle_connections(serving.addr);
    assert!(held.len() > OPEN_FILE_LIMIT as usize, "{} held", held.len());

    // The intake still answers (within the header timeout that frees slots).
    let started = Instant::now();
    let (health, _) = request(|client| client.get(format!("{}/healthz", serving.url)));
    assert_eq!(health, 200);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(post_event(&serving), 202);
    drop(held);

    wait_until(Duration::from_secs(20), "every delivery to end", || {
        statuses(&place).iter().all(|s| s == "delivered")
    });
    assert_eq!(statuses(&place).len(), 6);
}

const NTFY_TOKEN: &str = "tk_hardeningTokenSecret0123456789";
const NTFY_TOPIC: &str = "hardening-topicSecret-424242";
const URL_KEY: &str = "urlKeySecretABCDEFGH12345678";

/// Every prefix of 8 characters or more of every secret.
fn assert_no_part_of_a_secret(text: &str) {
    for secret in [NTFY_TOKEN, NTFY_TOPIC, URL_KEY] {
        for end in 8..=secret.len() {
            let part = &secret[..end];
            assert!(
                !text.contains(part),
                "`{part}` (of a secret) was shown:\n{text}"
            );
        }
    }
}

/// Every way the command line shows deliveries: list and show, table and JSON.
fn every_delivery_view(place: &Place) -> String {
    let mut shown = place.cli(&["deliveries", "list", "--limit", "0"]);
    shown.push_str(&place.cli(&["deliveries", "list", "--limit", "0", "--json"]));
    let listed = place.cli_json(&["deliveries", "list", "--limit", "0"]);
    for delivery in listed.as_array().expect("a list") {
        let id = delivery["id"].as_str().expect("an id");
        shown.push_str(&place.cli(&["deliveries", "show", id]));
        shown.push_str(&place.cli(&["deliveries", "show", id, "--json"]));
    }
    shown
}

#[test]
fn targets_that_echo_or_pad_their_errors_read_back_no_part_of_a_secret() {
    let place = place();
    let target = CaptureServer::start();
    target.script("/echo", [Reply::echo().with_status(500)]);
    // An error page that quotes the key just where an excerpt of 200 characters ends,
    // and a body cut by the read cap in the middle of the token.
    let padded = format!("{}key={URL_KEY} token={NTFY_TOKEN}", "x".repeat(180));
    target.script("/pad", [Reply::status(500).body(padded)]);
    let base = target.url();
    place.cli(&[
        "products",
        "add",
        "p1",
        "echoed",
        "--service",
        "ntfy",
        "--set",
        &format!("server={base}/echo"),
        "--set",
        &format!("topic={NTFY_TOPIC}"),
        "--set",
        &format!("token={NTFY_TOKEN}"),
    ]);
    place.cli(&[
        "products",
        "add",
        "p1",
        "padded",
        "--service",
        "webhook",
        "--set",
        &format!("urls={base}/pad/in?key={URL_KEY}"),
    ]);
    let serving = place.serve(&["--retry-schedule", "1h"]);
    assert_eq!(post_event(&serving), 202);
    wait_until(Duration::from_secs(15), "both attempts", || {
        statuses(&place).iter().all(|s| s == "failed")
    });
    assert_no_part_of_a_secret(&every_delivery_view(&place));
}

#[test]
fn running_out_of_file_descriptors_is_not_the_target_s_fault() {
    let place = place();
    let target = CaptureServer::start();
    failing_first(&target, 3);
    place.product(&format!("{}/in", target.url()), None);
    // No reserve: the connections may take every file descriptor.
    let serving = place.serve_limited(
        &[
            "--retry-schedule",
            "5s",
            "--retry-jitter",
            "0",
            "--max-connections",
            "5000",
            "--max-connections-per-client",
            "5000",
            "--header-timeout",
            "30s",
        ],
        OPEN_FILE_LIMIT,
    );
    let posted = Instant::now();
    for _ in 0..3 {
        assert_eq!(post_event(&serving), 202);
    }
    // The retries fall due (after 5 s) while every descriptor is taken.
    let held = hold_idle_connections(serving.addr);
    assert!(held.len() > OPEN_FILE_LIMIT as usize, "{} held", held.len());
    std::thread::sleep(Duration::from_secs(9).saturating_sub(posted.elapsed()));
    drop(held);

    wait_until(Duration::from_secs(20), "every delivery to end", || {
        statuses(&place).iter().all(|s| s == "delivered")
    });
    let (status, metrics) = request(|client| client.get(format!("{}/metrics", serving.url)));
    assert_eq!(status, 200);
    let local: u64 = metrics
        .lines()
        .filter(|line| line.starts_with("lookout_local_errors_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(local > 0, "no local error counted:\n{metrics}");
}

/// SIGPIPE's number on Linux and the BSDs.
const SIGPIPE: i32 = 13;

#[test]
fn a_closed_pipe_ends_printing_commands_quietly() {
    let place = place();
    place.product("http://127.0.0.1:9/in", None);
    let db = place.db();
    let db = db.to_str().expect("UTF-8 path");
    for args in [
        vec!["stats", "--database", db],
        vec!["deliveries", "list", "--database", db],
        vec!["products", "list", "--database", db],
        vec!["services"],
        vec!["docs"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lookout");
        // The reader is gone before anything is written: `lookout … | head -0`.
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let quiet = output.status.success() || output.status.signal() == Some(SIGPIPE);
        assert!(quiet, "{args:?}: {:?} {stderr}", output.status);
    }
}

#[test]
fn terminal_escapes_from_a_target_never_reach_the_terminal() {
    let place = place();
    let target = CaptureServer::start();
    let hostile = "\u{1b}[2J\u{1b}[H\u{7}forged\r\nabc  p1  hook  delivered\u{202e}";
    target.script("/in", [Reply::status(500).body(hostile)]);
    place.product(&format!("{}/in", target.url()), None);
    let serving = place.serve(&["--retry-schedule", "1h"]);
    assert_eq!(post_event(&serving), 202);
    wait_until(Duration::from_secs(15), "the failed attempt", || {
        statuses(&place) == ["failed"]
    });
    let listed = place.cli_json(&["deliveries", "list"]);
    let id = listed[0]["id"].as_str().expect("an id");
    // The JSON keeps the text, escaped the JSON way.
    assert!(listed[0]["last_error"].as_str().unwrap().contains('\u{1b}'));
    let mut tables = place.cli(&["deliveries", "list"]);
    tables.push_str(&place.cli(&["deliveries", "show", id]));
    for raw in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
        assert!(
            !tables.contains(raw),
            "{raw:?} reached the terminal:\n{tables}"
        );
    }
    assert!(tables.contains("\\x1b[2J"), "{tables}");
    // The forged row stays inside its own line.
    assert!(
        !tables.lines().any(|line| line.starts_with("abc")),
        "{tables}"
    );
    for json in [
        place.cli(&["deliveries", "list", "--json"]),
        place.cli(&["deliveries", "show", id, "--json"]),
    ] {
        assert!(!json.contains('\u{1b}'), "{json}");
        serde_json::from_str::<Value>(&json).expect("JSON");
    }
}

/// A new token from `lookout tokens create`: (id, secret).
fn create_token(place: &Place, args: &[&str]) -> (String, String) {
    let mut all = vec!["tokens", "create"];
    all.extend_from_slice(args);
    let created = place.cli_json(&all);
    let id = created["id"].as_str().expect("an id").to_owned();
    let secret = created["token"].as_str().expect("a token").to_owned();
    (id, secret)
}

/// The status of `method path` with `token` (none: no Authorization header).
fn status_of(serving: &Serving, method: &str, path: &str, token: Option<&str>) -> u16 {
    let url = format!("{}{path}", serving.url);
    let body = match (method, path) {
        ("POST", "/v1/tokens") => r#"{"scope": "ingest", "products": ["p1"]}"#.to_owned(),
        ("PUT", _) => r#"{"services": {}}"#.to_owned(),
        _ => item_event(),
    };
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    request(|client| {
        let built = client
            .request(method, url)
            .header("content-type", "application/json")
            .body(body);
        match token {
            Some(token) => built.bearer_auth(token),
            None => built,
        }
    })
    .0
}

#[test]
fn token_scopes_on_every_route() {
    let place = place();
    let target = CaptureServer::start();
    place.product(&format!("{}/in", target.url()), None);
    place.cli(&[
        "products",
        "add",
        "p2",
        "hook",
        "--service",
        "webhook",
        "--set",
        &format!("urls={}/in", target.url()),
    ]);
    let (_, ingest) = create_token(&place, &["--scope", "ingest", "--product", "p1"]);
    let (_, admin) = create_token(&place, &["--scope", "admin"]);
    let (_, expired) = create_token(&place, &["--scope", "admin", "--expires", "1s"]);
    let (revoked_id, revoked) = create_token(&place, &["--scope", "admin"]);
    place.cli(&["tokens", "revoke", &revoked_id]);
    let listed = place.cli(&["tokens", "list"]);
    assert!(
        listed.contains("ingest") && listed.contains("p1"),
        "{listed}"
    );
    // Only digests are kept: the database holds none of the tokens.
    for file in ["lookout.db", "lookout.db-wal"] {
        let bytes = std::fs::read(place.dir.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [&ingest, &admin] {
            assert!(!text.contains(secret.as_str()), "{file} holds a token");
        }
    }
    let serving = place.serve(&[]);
    std::thread::sleep(Duration::from_millis(1100)); // `expired` expires.

    // Who cannot get in at all: 401 everywhere under /v1.
    let routes = [
        ("POST", "/v1/events?product=p1"),
        ("POST", "/v1/products/p1/events"),
        ("GET", "/v1/services"),
        ("GET", "/v1/products"),
        ("GET", "/v1/products/p1"),
        ("PUT", "/v1/products/p3"),
        ("DELETE", "/v1/products/p3"),
        ("GET", "/v1/tokens"),
        ("POST", "/v1/tokens"),
        ("DELETE", "/v1/tokens/tok_none"),
        ("GET", "/v1/deliveries"),
        ("GET", "/v1/deliveries/msg_none"),
        ("POST", "/v1/deliveries/msg_none/redeliver"),
    ];
    let wrong = "0123456789abcdefghijklmnopqrstuv";
    for (method, path) in routes {
        for token in [
            None,
            Some(wrong),
            Some(expired.as_str()),
            Some(revoked.as_str()),
        ] {
            let status = status_of(&serving, method, path, token);
            assert_eq!(status, 401, "{method} {path} with {token:?}");
        }
    }
    // What each valid token may do.
    let expected = [
        ("POST", "/v1/events?product=p1", 202, 202),
        ("POST", "/v1/products/p1/events", 202, 202),
        ("POST", "/v1/products/p2/events", 403, 202),
        ("POST", "/v1/events?product=p2", 403, 202),
        ("GET", "/v1/services", 200, 200),
        ("GET", "/v1/products", 403, 200),
        ("GET", "/v1/products/p1", 403, 200),
        ("PUT", "/v1/products/p3", 403, 200),
        ("DELETE", "/v1/products/p3", 403, 204),
        ("GET", "/v1/tokens", 403, 200),
        ("POST", "/v1/tokens", 403, 201),
        ("DELETE", "/v1/tokens/tok_none", 403, 404),
        ("GET", "/v1/deliveries", 403, 200),
        ("GET", "/v1/deliveries/msg_none", 403, 404),
        ("POST", "/v1/deliveries/msg_none/redeliver", 403, 404),
    ];
    for (method, path, as_ingest, as_admin) in expected {
        if method == "PUT" || method == "DELETE" {
            // Each admin call changes state: ingest first, then each admin token once.
            assert_eq!(status_of(&serving, method, path, Some(&ingest)), as_ingest);
            assert_eq!(status_of(&serving, method, path, Some(&admin)), as_admin);
            continue;
        }
        for (who, token, want) in [
            ("ingest", &ingest, as_ingest),
            ("admin", &admin, as_admin),
            ("bootstrap", &TOKEN.to_owned(), as_admin),
        ] {
            let status = status_of(&serving, method, path, Some(token));
            assert_eq!(status, want, "{method} {path} as {who}");
        }
    }
    // Open without a token: health and metrics.
    assert_eq!(status_of(&serving, "GET", "/healthz", None), 200);
    assert_eq!(status_of(&serving, "GET", "/metrics", None), 200);
}

#[test]
fn weak_tokens_and_long_names_are_refused_without_echoing_them() {
    let place = place();
    let weak = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(place.db())
        .env("LOOKOUT_TOKEN", "a".repeat(16))
        .output()
        .expect("run serve");
    assert_eq!(weak.status.code(), Some(2));
    let said = String::from_utf8_lossy(&weak.stderr);
    assert!(said.contains("too weak"), "{said}");

    // A head large enough for the name (the default limit would answer 431 first).
    let serving = place.serve(&["--max-header-bytes", "100000"]);
    let long = "x".repeat(60_000);
    let (status, body) = request(|client| {
        client
            .get(format!("{}/v1/products/{long}", serving.url))
            .bearer_auth(TOKEN)
    });
    assert_eq!(status, 400);
    assert!(body.len() < 500, "{} bytes answered", body.len());
}

#[test]
fn healthz_fails_while_the_store_cannot_commit() {
    let place = place();
    let serving = place.serve(&[]);
    assert_eq!(status_of(&serving, "GET", "/healthz", None), 200);
    // Another writer holds the database: reads still work, commits do not.
    let other = rusqlite::Connection::open(place.db()).expect("open the database");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let started = Instant::now();
    assert_eq!(status_of(&serving, "GET", "/healthz", None), 503);
    assert!(started.elapsed() < Duration::from_secs(10));
    other.execute_batch("ROLLBACK").expect("let go");
    wait_until(Duration::from_secs(15), "health to come back", || {
        status_of(&serving, "GET", "/healthz", None) == 200
    });
}

#[test]
fn database_wal_shm_and_lock_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let place = place();
    // A database made beforehand, readable by everyone.
    std::fs::write(place.db(), b"").expect("create");
    std::fs::set_permissions(place.db(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let serving = place.serve(&[]);
    assert_eq!(status_of(&serving, "GET", "/healthz", None), 200);
    for suffix in ["", "-wal", "-shm", ".serve-lock"] {
        let file = place.dir.path().join(format!("lookout.db{suffix}"));
        let mode = std::fs::metadata(&file)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", file.display());
    }
}

/// `lookout validate` on a config of one `[services.s]` table with `options` (TOML
/// lines), and `[engine]` lines `engine`: whether it passed, and what it said.
fn validate(place: &Place, engine: &str, options: &str) -> (bool, String) {
    let config = place.dir.path().join("check.toml");
    std::fs::write(
        &config,
        format!("[engine]\n{engine}\n[services.s]\n{options}\n"),
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .expect("run validate");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), said)
}

/// Unusable secrets, targets the SSRF guard will refuse and credential-like pass-through
/// options: (options as TOML lines, the option the refusal must name).
const REFUSED: [(&str, &str); 7] = [
    (
        "service = \"webhook\"\nurls = \"https://example.com/in\"\nsecret = \"whsec_!!!notbase64\"",
        "secret",
    ),
    (
        "service = \"webhook\"\nurls = \"https://example.com/in\"\nsecret = \"12\"",
        "secret",
    ),
    (
        "service = \"webhook\"\nurls = \"https://example.com/in\"\nsecret = \"\"",
        "secret",
    ),
    (
        "service = \"webhook\"\nurls = \"http://10.0.0.1/in\"",
        "urls",
    ),
    (
        "service = \"webhook\"\nurls = \"http://localhost:9/in\"",
        "urls",
    ),
    (
        "service = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\ntoken = \"xoxb-1\"",
        "token",
    ),
    (
        "service = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\napi_key = \"k\"",
        "api_key",
    ),
];

#[test]
fn unusable_secrets_refused_targets_and_credential_pass_throughs_are_refused_when_configured() {
    let place = place();
    for (options, option) in REFUSED {
        let (ok, said) = validate(&place, "", options);
        assert!(!ok, "accepted:\n{options}");
        assert!(
            said.contains(&format!("s] {option}:")),
            "{option} not named: {said}"
        );
        assert!(!said.contains("xoxb-1"), "{said}");
    }
    // What makes them acceptable: the network allowed, the credential marked secret.
    let allowed = "allow_networks = [\"10.0.0.0/8\"]";
    assert!(
        validate(
            &place,
            allowed,
            "service = \"webhook\"\nurls = \"http://10.0.0.1/in\""
        )
        .0
    );
    let marked = "service = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n\
                  token = \"xoxb-1\"\nsecret_options = [\"token\"]";
    let (ok, said) = validate(&place, "", marked);
    assert!(ok, "{said}");
    assert!(
        !said.contains("xoxb-1"),
        "a marked secret was shown: {said}"
    );

    // The same at PUT time, on a server that allows loopback (its test targets).
    let serving = place.serve(&[]);
    for (options, option) in REFUSED.iter().filter(|(o, _)| !o.contains("localhost")) {
        let table: toml::Table = toml::from_str(options).expect("TOML");
        let body = serde_json::json!({ "services": { "s": table } }).to_string();
        let (status, answer) = request(|client| {
            client
                .put(format!("{}/v1/products/p1", serving.url))
                .bearer_auth(TOKEN)
                .body(body)
        });
        assert_eq!(status, 400, "accepted:\n{options}");
        assert!(
            answer.contains(&format!("s] {option}:")),
            "{option} not named: {answer}"
        );
    }
}

#[test]
fn secrets_are_redacted_by_value_and_short_url_paths_are_not_secrets() {
    let place = place();
    let key = "SlackKeyValue0123456789";
    place.cli(&[
        "products",
        "add",
        "p1",
        "chat",
        "--service",
        "slack",
        "--set",
        &format!("url=https://hooks.slack.com/services/T0/B0/{key}"),
        // The key pasted into a field that is not secret.
        "--set",
        &format!("channel=#ops-{key}"),
    ]);
    let shown = place.cli(&["products", "show", "p1"])
        + &place.cli(&["products", "show", "p1", "--json"])
        + &place.cli(&["products", "list", "--json"]);
    assert!(!shown.contains(key), "{shown}");
    assert!(shown.contains("#ops-"), "{shown}");

    let target = CaptureServer::start();
    let base = target.url();
    target.script(
        "/to",
        [Reply::status(302)
            .header("location", &format!("{base}/to"))
            .body("try again within a minute")],
    );
    place.cli(&["products", "remove", "p1", "chat"]);
    place.product(&format!("{base}/to"), None);
    let serving = place.serve(&[]);
    let (status, product) = request(|client| {
        client
            .get(format!("{}/v1/products/p1", serving.url))
            .bearer_auth(TOKEN)
    });
    assert_eq!(status, 200, "{product}");
    assert_eq!(post_event(&serving), 202);
    wait_until(Duration::from_secs(15), "the refused redirect", || {
        statuses(&place) == ["dead"]
    });
    let listed = place.cli(&["deliveries", "list"]);
    // The path is the URL's secret part, redacted after its host only: the word `to`
    // and `within` elsewhere stay.
    assert!(listed.contains("redirect to http://127.0.0.1:"), "{listed}");
    assert!(listed.contains("/[redacted] not followed"), "{listed}");
    assert!(listed.contains("within a minute"), "{listed}");
}
