//! The request path of `lookout serve` (docs/SERVING.md, "Limits on the request path"):
//! a flood of console previews from one portal session leaves the intake fast, one
//! address holding thousands of idle connections does not hold up anybody else, and
//! behind a trusted reverse proxy (a real nginx) clients are told apart by their
//! forwarded address, which nobody else can forge. The real binary, on loopback only
//! (127.0.0.0/8: each client binds an address of its own); every loop is bounded in
//! count and time, and nothing waits a fixed time.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::serving::{Place, Serving, wait_until};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "request-path-token-7d41c9e2a6b03f58";

/// Loopback allowed as a target, no pacing: the services point at a closed port and
/// `serve` runs without workers, so nothing is ever sent.
const ENGINE: &str = "[engine]\nrequest_timeout = \"3s\"\ndeadline = \"4s\"\nallow_networks = [\"127.0.0.0/8\"]\nrate_limits = false\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn ip(address: &str) -> IpAddr {
    address.parse().expect("an address")
}

/// An HTTP client whose connections come from `local` (an address of 127.0.0.0/8).
fn client_from(local: &str, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip(local))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A TCP connection to `to` from the address `local`.
async fn connect_from(local: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip(local), 0))?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect"))?
}

fn item_event() -> &'static str {
    lookout::samples::ALL[0].1
}

/// Posts the item sample for `product` from `client`: the status, and how long it took.
async fn post_event(client: &reqwest::Client, base: &str, product: &str) -> (u16, Duration) {
    post_event_with(client, base, product, &[]).await
}

async fn post_event_with(
    client: &reqwest::Client,
    base: &str,
    product: &str,
    headers: &[(&str, &str)],
) -> (u16, Duration) {
    let started = Instant::now();
    let mut request = client
        .post(format!("{base}/v1/products/{product}/events"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(item_event());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let status = match request.send().await {
        Ok(answer) => answer.status().as_u16(),
        // No answer at all (a timeout, a closed connection): counted as a failure.
        Err(_) => 0,
    };
    (status, started.elapsed())
}

/// The `q`-quantile of `samples` (nearest rank).
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The peak resident set of a process, in MiB (`VmHWM` in /proc).
fn peak_rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

// --- a preview flood ---------------------------------------------------------------------

/// How many previews the portal session posts at once.
const FLOOD: usize = 20;
/// Stored events of the flooded product (a preview compares the newest 200).
const FLOOD_EVENTS: usize = 200;
/// The most intake POSTs sent while the flood lasts (one every 25 ms: 90 s).
const INTAKE_POSTS: usize = 3_600;

/// Three Slack services whose four message parts each loop hundreds of times (well
/// within the templates' fuel): every event they are built for costs milliseconds of
/// CPU, and one preview of 200 events seconds.
fn heavy_services() -> String {
    let heavy = "{% for i in range(500) %}{% if i == 7 %}{{ title }} {% endif %}{% endfor %}";
    let mut tables = String::new();
    for n in 0..3 {
        tables.push_str(&format!(
            "[services.chat{n}]\nservice = \"slack\"\nurl = \"http://127.0.0.1:9/hook{n}\"\n"
        ));
        for part in ["headline", "title", "summary", "quote"] {
            tables.push_str(&format!("template.{part} = \"{heavy}\"\n"));
        }
    }
    tables
}

/// A portal link's session for `product`, opened as a browser opens it: its cookie.
async fn portal_session(place: &Place, serving: &Serving, product: &str) -> String {
    let link = common::stdout_of(
        Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(["portal-link", product, "--url", &serving.url, "--database"])
            .arg(place.db())
            .env("LOOKOUT_TOKEN", TOKEN),
    );
    let link = link.trim();
    let client = client_from("127.0.0.9", Duration::from_secs(10));
    let opened = client.get(link).send().await.expect("the link opens");
    common::set_cookie(&opened, "lookout_session")
        .unwrap_or_else(|| panic!("no session cookie: {opened:?}"))
}

#[test]
fn a_preview_flood_from_one_portal_session_leaves_the_intake_fast() {
    let place = Place::new(TOKEN, ENGINE);
    let services = place.dir.path().join("heavy.toml");
    std::fs::write(&services, format!("{ENGINE}{}", heavy_services())).expect("write");
    let services_path = services.display().to_string();
    place.cli(&["products", "import", "flood", "--config", &services_path]);
    place.cli(&[
        "products",
        "add",
        "intake",
        "hook",
        "--service",
        "webhook",
        "--set",
        "urls=http://127.0.0.1:9/in",
    ]);
    let serving = place.serve(&["--no-workers"]);
    let runtime = runtime();
    runtime.block_on(async {
        // The flooded product's history: 200 events.
        let admin = client_from("127.0.0.8", Duration::from_secs(30));
        for _ in 0..FLOOD_EVENTS / 50 {
            let batch = format!("[{}]", vec![item_event(); 50].join(","));
            let stored = admin
                .post(format!("{}/v1/events/batch?product=flood", serving.url))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(batch)
                .send()
                .await
                .expect("batch");
            assert_eq!(stored.status(), 200);
        }

        let cookie = portal_session(&place, &serving, "flood").await;
        let browser = client_from("127.0.0.10", Duration::from_secs(120));
        let form_url = format!("{}/ui/products/flood/preview", serving.url);
        let form = browser
            .get(&form_url)
            .header("cookie", &cookie)
            .send()
            .await
            .expect("the form");
        assert_eq!(form.status(), 200);
        let form = form.text().await.expect("a page");
        let csrf = common::between(&form, "name=\"csrf\" value=\"", "\"").to_owned();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("csrf", &csrf)
            .append_pair("services", &heavy_services())
            .append_pair("window", "24h")
            .append_pair("service", "")
            .finish();

        // Another client posts events to another product, one every 25 ms whatever the
        // answers (a stall shows as many slow answers, not one), for as long as the
        // flood lasts and at least 100 times.
        let flooding = Arc::new(AtomicBool::new(true));
        let intake = {
            let flooding = flooding.clone();
            let base = serving.url.clone();
            tokio::spawn(async move {
                let sender = client_from("127.0.0.11", Duration::from_secs(30));
                let mut ticks = tokio::time::interval(Duration::from_millis(25));
                let mut posts = Vec::new();
                while (flooding.load(Ordering::Relaxed) || posts.len() < 100)
                    && posts.len() < INTAKE_POSTS
                {
                    ticks.tick().await;
                    let (sender, base) = (sender.clone(), base.clone());
                    posts.push(tokio::spawn(async move {
                        post_event(&sender, &base, "intake").await
                    }));
                }
                let mut answers = Vec::new();
                for post in posts {
                    answers.push(post.await.expect("a POST task"));
                }
                answers
            })
        };

        let started = Instant::now();
        let flood: Vec<_> = (0..FLOOD)
            .map(|_| {
                let (browser, url, cookie, body) = (
                    browser.clone(),
                    form_url.clone(),
                    cookie.clone(),
                    body.clone(),
                );
                tokio::spawn(async move {
                    let answer = browser
                        .post(url)
                        .header("cookie", cookie)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body)
                        .send()
                        .await;
                    match answer {
                        Ok(answer) => {
                            let status = answer.status().as_u16();
                            (status, answer.text().await.unwrap_or_default())
                        }
                        Err(err) => (0, err.to_string()),
                    }
                })
            })
            .collect();
        let mut answers = Vec::new();
        for answer in flood {
            answers.push(answer.await.expect("a flood task"));
        }
        let flood_took = started.elapsed();
        flooding.store(false, Ordering::Relaxed);
        let intake = intake.await.expect("the intake task");
        let samples: Vec<Duration> = intake.iter().map(|(_, took)| *took).collect();
        let failures = intake.iter().filter(|(status, _)| *status != 202).count();

        let p50 = quantile(&samples, 0.5);
        let p99 = quantile(&samples, 0.99);
        let max = quantile(&samples, 1.0);
        let count = |status: u16| answers.iter().filter(|(s, _)| *s == status).count();
        let rss = peak_rss_mib(serving.pid());
        println!(
            "preview flood: {FLOOD} previews in {flood_took:?}: {} answered 200, {} answered \
             429; intake meanwhile: {} POSTs, p50 {p50:?}, p99 {p99:?}, max {max:?}; serve's \
             peak RSS {rss:?} MiB",
            count(200),
            count(429),
            samples.len(),
        );
        assert!(
            p99 < Duration::from_millis(500),
            "intake p99 {p99:?} during a preview flood (p50 {p50:?}, max {max:?})"
        );
        assert_eq!(failures, 0, "intake POSTs failed during the flood");
        for (status, page) in &answers {
            assert!(
                *status == 200 || *status == 429,
                "a preview answered {status}: {page}"
            );
        }
        assert!(count(200) >= 1, "no preview ran");
        assert!(
            count(429) >= FLOOD - 2,
            "the flood was not refused: {} of {FLOOD} answered 429",
            count(429)
        );
        let (_, refused) = answers
            .iter()
            .find(|(status, _)| *status == 429)
            .expect("a 429");
        assert!(
            refused.contains("<ul class=\"problems\"") && refused.contains("already running"),
            "the 429 is not the console's page with the problem:\n{refused}"
        );
        let (_, ran) = answers.iter().find(|(status, _)| *status == 200).unwrap();
        assert!(ran.contains("id=\"report\""), "{ran}");

        // Still healthy, and the session may preview again now that its preview is done.
        let health = admin
            .get(format!("{}/healthz", serving.url))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .expect("healthz");
        assert_eq!(health.status(), 200);
        let again = browser
            .post(&form_url)
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("a preview");
        assert_eq!(
            again.status(),
            200,
            "the session's place was not given back"
        );
    });
}

// --- one address, thousands of idle connections ------------------------------------------

/// Idle connections one address opens.
const IDLE: usize = 2_000;

/// Raises this process's soft open-file limit to its hard limit (`serve`, started from
/// here, inherits it); fails, saying so, when the hard limit is below `needed`.
fn raise_open_file_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(read, 0, "getrlimit(RLIMIT_NOFILE) failed");
    assert!(
        limit.rlim_max >= needed,
        "this test holds {IDLE} connections and needs an open-file limit of {needed}, but \
         the hard limit is {}: raise it (`ulimit -Hn {needed}` as root, or LimitNOFILE=)",
        limit.rlim_max
    );
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(set, 0, "setrlimit(RLIMIT_NOFILE) failed");
    }
}

#[test]
fn one_address_holding_2000_idle_connections_does_not_hold_up_another_client() {
    raise_open_file_limit(IDLE as u64 * 2 + 1_024);
    let place = Place::new(TOKEN, ENGINE);
    place.product("http://127.0.0.1:9/in", None);
    // A connection cap below what the one address opens.
    let serving = place.serve(&["--no-workers", "--max-connections", "1000"]);
    let runtime = runtime();
    runtime.block_on(async {
        let started = Instant::now();
        let mut held = Vec::new();
        while held.len() < IDLE && started.elapsed() < Duration::from_secs(30) {
            if let Ok(stream) = connect_from("127.0.0.2", serving.addr).await {
                held.push(stream);
            }
        }
        assert_eq!(held.len(), IDLE, "connected {} of {IDLE}", held.len());
        println!(
            "{IDLE} idle connections from 127.0.0.2 in {:?}",
            started.elapsed()
        );

        let other = client_from("127.0.0.3", Duration::from_secs(20));
        let (status, took) = post_event(&other, &serving.url, "p1").await;
        println!("another client's POST meanwhile: {status} in {took:?}");
        assert_eq!(status, 202);
        assert!(
            took < Duration::from_secs(1),
            "another client's POST took {took:?} while one address held {IDLE} connections"
        );

        // The address was held to its share: the rest of its connections were answered
        // 429 and closed at once.
        let refused = |held: &mut Vec<TcpStream>| {
            let mut buf = [0u8; 512];
            held.iter_mut()
                .filter(|stream| match stream.try_read(&mut buf) {
                    Ok(n) => n == 0 || String::from_utf8_lossy(&buf[..n]).contains(" 429 "),
                    Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
                })
                .count()
        };
        let mut closed = 0;
        let waited = Instant::now();
        while waited.elapsed() < Duration::from_secs(10) {
            closed = refused(&mut held);
            if closed >= IDLE - 1_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            closed >= IDLE - 1_000,
            "only {closed} of the address's {IDLE} connections were refused"
        );
        drop(held);
    });
}

// --- behind a reverse proxy --------------------------------------------------------------

/// The address nginx connects to `serve` from (`proxy_bind`): the trusted proxy.
const PROXY: &str = "127.0.0.2";

/// A running nginx, in front of one or more `serve`s, stopped when dropped.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

/// A free TCP port on 127.0.0.1 (bound, then let go, for nginx to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// nginx from Debian, one `server` per upstream, each listening on 127.0.0.1 on a port of
/// its own (returned, in order), forwarding the client's address in X-Forwarded-For and
/// passing request bodies on as they arrive (so that a half-sent one is in flight).
fn start_nginx(upstreams: &[SocketAddr]) -> (Nginx, Vec<SocketAddr>) {
    let binary = Path::new("/usr/sbin/nginx");
    assert!(
        binary.exists(),
        "nginx is not installed: run `make test-deps` (installs Debian's nginx)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().display().to_string();
    let mut servers = String::new();
    let mut listening = Vec::new();
    for upstream in upstreams {
        let port = free_port();
        listening.push(SocketAddr::from(([127, 0, 0, 1], port)));
        servers.push_str(&format!(
            "  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      \
             proxy_pass http://{upstream};\n      proxy_bind {PROXY};\n      \
             proxy_http_version 1.1;\n      proxy_request_buffering off;\n      \
             proxy_set_header Host $host;\n      \
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n"
        ));
    }
    // One process, no daemon, everything it writes in the temp dir. (Without a master
    // process nginx never changes user, so running as root needs no `user` line.)
    let config = format!(
        "master_process off;\ndaemon off;\npid {path}/nginx.pid;\nerror_log {path}/error.log warn;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {path}/body;\n  \
         proxy_temp_path {path}/proxy;\n  fastcgi_temp_path {path}/fastcgi;\n  \
         uwsgi_temp_path {path}/uwsgi;\n  scgi_temp_path {path}/scgi;\n{servers}}}\n"
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config).expect("write nginx.conf");
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    let mut nginx = Nginx { child, _dir: dir };
    let log = nginx._dir.path().join("error.log");
    for address in &listening {
        wait_until(Duration::from_secs(10), "nginx to listen", || {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("nginx exited ({status}):\n{log}");
            }
            std::net::TcpStream::connect_timeout(address, Duration::from_millis(200)).is_ok()
        });
    }
    (nginx, listening)
}

/// A POST whose body is promised and never finished, sent from `local` to `to`: the
/// request stays in flight at `serve` while the connection is held.
async fn half_sent_post(local: &str, to: SocketAddr) -> TcpStream {
    let mut stream = connect_from(local, to).await.expect("connect");
    let head = format!(
        "POST /v1/products/p1/events HTTP/1.1\r\nHost: lookout\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"model\": \"Item\","
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

/// Whether `serve` (or the proxy) has answered on `stream`, or closed it.
fn answered(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 256];
    !matches!(stream.try_read(&mut buf), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
}

/// Holds one request of the client at `local` in flight at `serve`, sent to `to`: its
/// connection. Shown by the client's next request (from `client` to `base`) being
/// refused while the held one is not answered; within 10 s.
async fn hold_a_request(
    local: &str,
    to: SocketAddr,
    client: &reqwest::Client,
    base: &str,
) -> TcpStream {
    let started = Instant::now();
    let mut held = half_sent_post(local, to).await;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a second request of a client holding one open was never refused"
        );
        let (status, _) = post_event(client, base, "p1").await;
        if answered(&held) {
            // The probe overtook the held request, which was refused in its place.
            held = half_sent_post(local, to).await;
            continue;
        }
        if status == 429 {
            return held;
        }
        assert_eq!(status, 202, "unexpected answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request at a time per client: what tells clients apart here.
const ONE_REQUEST: [&str; 2] = ["--max-requests-per-client", "1"];

#[test]
fn behind_a_trusted_nginx_each_client_has_its_own_limit() {
    let trusted_place = Place::new(TOKEN, ENGINE);
    trusted_place.product("http://127.0.0.1:9/in", None);
    let mut args = vec!["--no-workers", "--trusted-proxy", "127.0.0.2/32"];
    args.extend(ONE_REQUEST);
    let trusted = trusted_place.serve(&args);
    let untrusted_place = Place::new(TOKEN, ENGINE);
    untrusted_place.product("http://127.0.0.1:9/in", None);
    let mut args = vec!["--no-workers"];
    args.extend(ONE_REQUEST);
    let untrusted = untrusted_place.serve(&args);
    let (_nginx, proxies) = start_nginx(&[trusted.addr, untrusted.addr]);
    let (via_trusted, via_untrusted) = (
        format!("http://{}", proxies[0]),
        format!("http://{}", proxies[1]),
    );
    let runtime = runtime();
    runtime.block_on(async {
        let a = client_from("127.0.0.3", Duration::from_secs(10));
        let b = client_from("127.0.0.4", Duration::from_secs(10));

        // Trusted: client A holds a request open through the proxy and is refused a
        // second one, even when it writes an address of its own into X-Forwarded-For
        // (nginx appends the address A really came from); client B, through the same
        // proxy, is served.
        let held = hold_a_request("127.0.0.3", proxies[0], &a, &via_trusted).await;
        let (status, _) =
            post_event_with(&a, &via_trusted, "p1", &[("x-forwarded-for", "10.9.8.7")]).await;
        assert_eq!(status, 429, "a forged X-Forwarded-For let client A through");
        let (status, took) = post_event(&b, &via_trusted, "p1").await;
        assert_eq!(status, 202, "client B was refused for A's request");
        println!("behind a trusted nginx: A refused, B served in {took:?}");
        drop(held);

        // Untrusted: every client shares the proxy's address, and A's open request
        // leaves B nothing.
        let held = hold_a_request("127.0.0.3", proxies[1], &a, &via_untrusted).await;
        let (status, _) = post_event(&b, &via_untrusted, "p1").await;
        assert_eq!(
            status, 429,
            "without --trusted-proxy, A and B share one address"
        );
        drop(held);
    });
}

#[test]
fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let place = Place::new(TOKEN, ENGINE);
    place.product("http://127.0.0.1:9/in", None);
    let mut args = vec!["--no-workers", "--trusted-proxy", "127.0.0.2/32"];
    args.extend(ONE_REQUEST);
    let serving = place.serve(&args);
    let runtime = runtime();
    runtime.block_on(async {
        // 127.0.0.5 is no proxy: its X-Forwarded-For and Forwarded headers do not make
        // its second request another client's.
        let c = client_from("127.0.0.5", Duration::from_secs(10));
        let held = hold_a_request("127.0.0.5", serving.addr, &c, &serving.url).await;
        let forged = [
            ("x-forwarded-for", "10.1.2.3"),
            ("forwarded", "for=10.1.2.4;proto=http"),
        ];
        for header in forged {
            let (status, _) = post_event_with(&c, &serving.url, "p1", &[header]).await;
            assert_eq!(
                status, 429,
                "{header:?} from an untrusted peer dodged the limit"
            );
        }
        // Another address is served meanwhile.
        let d = client_from("127.0.0.6", Duration::from_secs(10));
        assert_eq!(post_event(&d, &serving.url, "p1").await.0, 202);
        drop(held);
    });
}
