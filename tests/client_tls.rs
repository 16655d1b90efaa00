//! Client certificates (mutual TLS) for the webhook service, against a real TLS server
//! that requires one: Debian's nginx (`ssl_verify_client on`) on 127.0.0.1, in front of
//! a capture server, with certificates made by the `openssl` command in a temp dir for
//! each run (a private CA, the server's certificate for 127.0.0.1, a client certificate,
//! and a second CA with a client certificate of its own). Delivered with the
//! certificate, refused without it or with another CA's; options checked when they
//! are validated (a key that does not match its certificate is named); the key never
//! shown, in reports, errors, `lookout validate`, the API, the console or logs.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout::{Config, Engine, Event, Instance, Outcome, Report, Settings};
use lookout_testkit::CaptureServer;
use serde_json::{Map, Value, json};

/// Certificates and keys, PEM, made for one run.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki { dir };
        pki.authority("ca", "Lookout Test CA");
        pki.issue(
            "server",
            "ca",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        pki.issue(
            "client",
            "ca",
            "lookout-client",
            "extendedKeyUsage=clientAuth",
        );
        pki.authority("rogue", "Another CA");
        pki.issue(
            "stranger",
            "rogue",
            "stranger",
            "extendedKeyUsage=clientAuth",
        );
        pki.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.key",
        ]);
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl is installed (make test-deps)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A self-signed CA: `NAME.pem`, `NAME.key`.
    fn authority(&self, name: &str, subject: &str) {
        let (pem, key, subject) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("/CN={subject}"),
        );
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subject,
        ]);
    }

    /// An end-entity certificate signed by CA `ca`, with these extensions.
    fn issue(&self, name: &str, ca: &str, common_name: &str, extensions: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.path().join(&ext),
            format!("basicConstraints=CA:FALSE\n{extensions}\n"),
        )
        .unwrap();
        let (csr, key, pem) = (
            format!("{name}.csr"),
            format!("{name}.key"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={common_name}");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ]);
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap()
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }
}

/// nginx requiring a client certificate from `ca.pem`, passing what it accepts to
/// `upstream` with the verified subject in `X-Client-Subject`. Stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

fn start_nginx(pki: &Pki, upstream: &CaptureServer) -> Nginx {
    let binary = Path::new("/usr/sbin/nginx");
    assert!(
        binary.exists(),
        "nginx is not installed: run `make test-deps` (installs Debian's nginx)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let upstream = upstream.addr();
    // One process, no daemon, everything it writes in the temp dir.
    let config = format!(
        "master_process off;\ndaemon off;\npid {path}/nginx.pid;\nerror_log {path}/error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {path}/body;\n  \
         proxy_temp_path {path}/proxy;\n  fastcgi_temp_path {path}/fastcgi;\n  \
         uwsgi_temp_path {path}/uwsgi;\n  scgi_temp_path {path}/scgi;\n  \
         server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n    \
         ssl_certificate_key {key};\n    ssl_client_certificate {ca};\n    \
         ssl_verify_client on;\n    location / {{\n      proxy_pass http://{upstream};\n      \
         proxy_set_header X-Client-Subject $ssl_client_s_dn;\n    }}\n  }}\n}}\n"
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
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
    let mut nginx = Nginx {
        child,
        port,
        _dir: dir,
    };
    let log = nginx._dir.path().join("error.log");
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    common::serving::wait_until(Duration::from_secs(10), "nginx to listen", || {
        if let Ok(Some(status)) = nginx.child.try_wait() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("nginx exited ({status}):\n{log}");
        }
        std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
    });
    nginx
}

/// One run's PKI, nginx and capture server.
struct Site {
    pki: Pki,
    /// None for tests that send nothing.
    nginx: Option<Nginx>,
    upstream: CaptureServer,
}

impl Site {
    fn start() -> Site {
        let pki = Pki::make();
        let upstream = CaptureServer::start();
        let nginx = Some(start_nginx(&pki, &upstream));
        Site {
            pki,
            nginx,
            upstream,
        }
    }

    /// The certificates alone, for tests that send nothing.
    fn without_server() -> Site {
        Site {
            pki: Pki::make(),
            nginx: None,
            upstream: CaptureServer::start(),
        }
    }

    fn url(&self) -> String {
        let port = self.nginx.as_ref().map_or(443, |n| n.port);
        format!("https://127.0.0.1:{port}/hooks/in")
    }

    /// Webhook options to nginx, trusting the test CA, presenting `client` (its
    /// certificate and key files' stem), if any.
    fn options(&self, client: Option<&str>) -> Map<String, Value> {
        let mut options = json!({
            "urls": [self.url()],
            "ca_certificate": self.pki.read("ca.pem"),
        });
        if let Some(client) = client {
            options["client_certificate"] = json!(self.pki.read(&format!("{client}.pem")));
            options["client_key"] = json!(self.pki.read(&format!("{client}.key")));
        }
        options.as_object().unwrap().clone()
    }

    /// Every secret spelling of the client keys: the whole, and each base64 line.
    fn key_pieces(&self) -> Vec<String> {
        let mut pieces = Vec::new();
        for file in ["client.key", "stranger.key", "other.key"] {
            let key = self.pki.read(file);
            pieces.extend(
                key.lines()
                    .filter(|line| !line.starts_with("-----"))
                    .map(str::to_owned),
            );
            pieces.push(key);
        }
        pieces
    }

    fn assert_no_key_in(&self, what: &str, text: &str) {
        for piece in self.key_pieces() {
            assert!(
                !text.contains(&piece),
                "a private key is in {what}:\n{text}"
            );
        }
    }
}

fn webhook(options: &Map<String, Value>) -> Instance {
    common::instance(lookout::service::find("webhook").unwrap(), options)
}

async fn send(site: &Site, instance: &Instance, settings: Settings) -> Report {
    let event = Event::parse(&lookout_testkit::fixture_json("item")).unwrap();
    let engine = Engine::with_settings(settings).unwrap();
    let report = engine
        .dispatch_to(&event, std::slice::from_ref(instance))
        .await;
    site.assert_no_key_in("the report", &serde_json::to_string(&report).unwrap());
    site.assert_no_key_in("the report", &format!("{report:?}"));
    report
}

fn outcome(report: &Report) -> &Outcome {
    assert_eq!(report.results.len(), 1, "{report:?}");
    &report.results[0].delivery.outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_with_the_client_certificate_refused_without_it() {
    let logs = common::captured_logs();
    let site = Site::start();
    let settings = lookout_testkit::settings();

    let with = send(
        &site,
        &webhook(&site.options(Some("client"))),
        settings.clone(),
    )
    .await;
    assert!(
        matches!(outcome(&with), Outcome::Delivered { status: 200 }),
        "{with:?}"
    );
    let arrived = site.upstream.wait_for(1, Duration::from_secs(5));
    assert_eq!(arrived.len(), 1);
    assert_eq!(
        arrived[0].header("x-client-subject"),
        Some("CN=lookout-client")
    );
    assert_eq!(
        arrived[0].json(),
        serde_json::from_str::<Value>(&lookout_testkit::fixture_json("item")).unwrap()
    );

    // nginx answers 400 to a handshake without a certificate, or with one it does not
    // trust; neither reaches the endpoint behind it.
    let without = send(&site, &webhook(&site.options(None)), settings.clone()).await;
    match outcome(&without) {
        Outcome::Failed {
            status: Some(400),
            reason,
        } => {
            assert!(
                reason.contains("No required SSL certificate was sent"),
                "{reason}"
            )
        }
        other => panic!("without a certificate: {other:?}"),
    }
    let stranger = send(
        &site,
        &webhook(&site.options(Some("stranger"))),
        settings.clone(),
    )
    .await;
    assert!(
        matches!(
            outcome(&stranger),
            Outcome::Failed {
                status: Some(400),
                ..
            }
        ),
        "{stranger:?}"
    );
    assert_eq!(
        site.upstream.count(),
        1,
        "a refused request reached the endpoint"
    );

    // Without the private CA, the server's certificate is not trusted: said in words.
    let mut untrusting = site.options(Some("client"));
    untrusting.remove("ca_certificate");
    let refused = send(&site, &webhook(&untrusting), settings).await;
    match outcome(&refused) {
        Outcome::Failed {
            status: None,
            reason,
        } => {
            assert!(
                reason.starts_with("TLS failed: the server's certificate is not signed"),
                "{reason}"
            )
        }
        other => panic!("without the CA: {other:?}"),
    }
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logged.contains("delivery"), "no log line was captured");
    site.assert_no_key_in("the log", &logged);
}

/// The client of a service with a certificate goes through the SSRF guard like every
/// other: without `loopback_only`, 127.0.0.1 is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssrf_guard_applies_to_clients_with_a_certificate() {
    let site = Site::start();
    let guarded = Settings {
        loopback_only: false,
        ..lookout_testkit::settings()
    };
    let report = send(&site, &webhook(&site.options(Some("client"))), guarded).await;
    match outcome(&report) {
        Outcome::Failed { reason, .. } => assert!(reason.contains("blocked"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(site.upstream.count(), 0);
}

/// Each problem names its option and quotes no key.
#[test]
fn bad_certificates_and_keys_are_refused_naming_the_option() {
    let site = Site::without_server();
    let problems = |options: Map<String, Value>| -> String {
        let problems = Instance::new("hook", "webhook", &options).expect_err("accepted");
        let text = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        site.assert_no_key_in("a validation problem", &text);
        text
    };
    let mut mismatched = site.options(Some("client"));
    mismatched.insert("client_key".into(), json!(site.pki.read("other.key")));
    assert_eq!(
        problems(mismatched),
        "[services.hook] client_key: does not match `client_certificate` (the certificate \
         was issued for another key)"
    );

    let mut not_pem = site.options(Some("client"));
    not_pem.insert("client_certificate".into(), json!("MIIB not a certificate"));
    let text = problems(not_pem);
    assert!(
        text.starts_with("[services.hook] client_certificate: expected a PEM certificate"),
        "{text}"
    );

    // A key with one base64 line damaged: a PEM, but not a key.
    let key = site.pki.read("client.key");
    let damaged = key.replacen("MI", "M!", 1);
    let mut corrupt = site.options(Some("client"));
    corrupt.insert("client_key".into(), json!(damaged));
    let text = problems(corrupt);
    assert!(text.starts_with("[services.hook] client_key: "), "{text}");
    assert!(!text.contains(&damaged), "{text}");

    let mut alone = site.options(Some("client"));
    alone.remove("client_certificate");
    assert_eq!(
        problems(alone),
        "[services.hook] client_key: set `client_certificate` too: a key is presented with its \
         certificate"
    );
    let mut bad_ca = site.options(None);
    bad_ca.insert("ca_certificate".into(), json!(key));
    let text = problems(bad_ca);
    assert!(
        text.starts_with("[services.hook] ca_certificate: expected a PEM certificate"),
        "{text}"
    );

    // The config file says the same, with the key redacted.
    let mut table = site.options(Some("client"));
    table.insert("client_key".into(), json!(site.pki.read("other.key")));
    table.insert("service".into(), json!("webhook"));
    let config = json!({"services": {"hook": table}}).to_string();
    let err = Config::parse(&config, "test config").expect_err("accepted");
    site.assert_no_key_in("a config error", &format!("{err} {err:?}"));
    assert!(
        err.to_string().contains("client_key: does not match"),
        "{err}"
    );
}

/// `lookout validate --config path`: whether it passed, and all it printed.
fn validate(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["validate", "--config"])
        .arg(path)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// `lookout validate` names the option, and prints no part of the key.
#[test]
fn lookout_validate_refuses_a_mismatched_key_without_showing_it() {
    let site = Site::without_server();
    let toml_string = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let config = format!(
        "[engine]\n{}\n\n[services.hook]\nservice = \"webhook\"\nurls = [\"{}\"]\n\
         client_certificate = {}\nclient_key = {}\n",
        common::test_engine_toml(),
        site.url(),
        toml_string(&site.pki.read("client.pem")),
        toml_string(&site.pki.read("other.key")),
    );
    let path = site.pki.dir.path().join("lookout.toml");
    std::fs::write(&path, config).unwrap();
    let (valid, printed) = validate(&path);
    assert!(!valid, "{printed}");
    assert!(
        printed.contains("client_key: does not match `client_certificate`"),
        "{printed}"
    );
    site.assert_no_key_in("`lookout validate`", &printed);

    // A matching pair passes.
    let good = std::fs::read_to_string(&path).unwrap().replace(
        &toml_string(&site.pki.read("other.key")),
        &toml_string(&site.pki.read("client.key")),
    );
    std::fs::write(&path, good).unwrap();
    let (valid, printed) = validate(&path);
    assert!(valid, "{printed}");
    site.assert_no_key_in("`lookout validate`", &printed);
}

/// `PUT /v1/products/{id}` refuses the mismatched key naming it, keeps a good one, and
/// shows it nowhere (the product as read back, the list of products).
#[test]
fn the_api_refuses_a_mismatched_key_and_never_shows_a_key() {
    const TOKEN: &str = "client-tls-test-token-0f3a9c2e";
    let site = Site::without_server();
    let place = common::serving::Place::new(
        TOKEN,
        &format!("[engine]\n{}\n", common::test_engine_toml()),
    );
    let serving = place.serve(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let put = |table: Map<String, Value>| {
            http.put(format!("{}/v1/products/p1", serving.url))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(json!({"services": {"hook": table}}).to_string())
                .send()
        };
        let mut table = site.options(Some("client"));
        table.insert("service".into(), json!("webhook"));
        let mut mismatched = table.clone();
        mismatched.insert("client_key".into(), json!(site.pki.read("other.key")));
        let refused = put(mismatched).await.unwrap();
        assert_eq!(refused.status(), 400);
        let body = refused.text().await.unwrap();
        assert!(
            body.contains("client_key") && body.contains("does not match"),
            "{body}"
        );
        site.assert_no_key_in("the API's answer", &body);

        let saved = put(table).await.unwrap();
        assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());
        for path in ["/v1/products/p1", "/v1/products"] {
            let shown = http
                .get(format!("{}{path}", serving.url))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            site.assert_no_key_in(path, &shown);
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    });
}

/// The console's pages about a product whose webhook presents a client certificate:
/// the product, the service's edit form and the preview's prefilled table show no part
/// of the key (the console's router alone, on a SQLite store, on loopback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_never_shows_the_key() {
    use lookout::delivery::Transport;
    use lookout::delivery::ssrf::Guard;
    use lookout_server::console::{self, Console, Keys, PreviewLimits, Previews, Scope};
    use lookout_server::store::{self, instances_from_table};
    use std::sync::Arc;

    const ADMIN_TOKEN: &str = "client-tls-console-admin-token-0123456789";
    let site = Site::without_server();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.db").display().to_string();
    let store = store::open(&path).await.unwrap();
    let mut table = site.options(Some("client"));
    table.insert("service".into(), json!("webhook"));
    let services = json!({ "hook": table });
    let instances = instances_from_table(services.as_object().unwrap()).unwrap();
    store.put_product("p1", &instances).await.unwrap();

    let settings = Settings {
        allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let keys = Keys::from_admin_token(ADMIN_TOKEN);
    let until = store::now_ms() + 3_600_000;
    let session = console::start_session(store.as_ref(), &keys, &Scope::Admin, None, until)
        .await
        .unwrap()
        .expect("stored");
    let console = Console {
        store: store.clone(),
        wake: Arc::new(tokio::sync::Notify::new()),
        guard: Guard::for_settings(&settings),
        routes: Arc::new(lookout_server::routing::RouteCache::new(settings.clone())),
        transport: Transport::new(settings).unwrap(),
        keys,
        previews: Arc::new(Previews::new(PreviewLimits::default(), Arc::default())),
        guesses: Arc::new(lookout_server::guessing::Guesses::new(Arc::default())),
        max_link_ttl: console::MAX_LINK_TTL,
    };
    let app = axum::Router::new().nest_service("/ui", console::router(console));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = reqwest::Client::new();
    for page in [
        "/ui/products/p1",
        "/ui/products/p1/services/hook",
        "/ui/products/p1/preview",
    ] {
        let answer = client
            .get(format!("{base}{page}"))
            .header("cookie", format!("lookout_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{page}");
        let html = answer.text().await.unwrap();
        assert!(
            html.contains("hook"),
            "{page}: not the product's page:\n{html}"
        );
        if page.ends_with("/hook") {
            // The form has the key's field, left blank (a secret is kept unless retyped).
            assert!(html.contains("client_key"), "{page}:\n{html}");
        }
        // As written in the page, and as a browser reads it (HTML escapes undone).
        site.assert_no_key_in(page, &html);
        site.assert_no_key_in(page, &html.replace("&#43;", "+").replace("&#x2F;", "/"));
    }
}
