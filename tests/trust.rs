//! Trust boundaries (issue 25): a stored secret never follows its service to a new
//! destination, predictable tokens are refused, loopback brokers and SMTP hosts are
//! refused at configuration time, guessing tokens is slowed down. The real binary, on
//! loopback only; every wait is bounded.

mod common;

use std::process::Command;
use std::time::Duration;

use common::serving::{Place, Serving};
use lookout_testkit::CaptureServer;
use serde_json::{Value, json};

const TOKEN: &str = "trust-test-token-7c1e4a9b3f05d2e8";
/// The errbot token stored with the service: it may only ever reach the first target.
const BOT_TOKEN: &str = "errbot-shared-T0KEN-9f2c61";

/// Loopback allowed (tests send only to 127.0.0.1), short timeouts.
const ENGINE: &str = "[engine]\nrequest_timeout = \"3s\"\ndeadline = \"4s\"\nallow_networks = [\"127.0.0.0/8\"]\nrate_limits = false\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A console session opened from a portal link, as a browser would: its cookie and the
/// CSRF token of its forms.
struct Portal {
    base: String,
    cookie: String,
    csrf: String,
}

impl Portal {
    async fn open(place: &Place, serving: &Serving, product: &str) -> Portal {
        let link = common::stdout_of(
            Command::new(env!("CARGO_BIN_EXE_lookout"))
                .args(["portal-link", product, "--url", &serving.url, "--database"])
                .arg(place.db())
                .env("LOOKOUT_TOKEN", TOKEN),
        );
        let opened = client().get(link.trim()).send().await.expect("the link");
        Portal::with_cookie(serving, product, session_cookie(&opened)).await
    }

    /// The portal of a session whose cookie is `cookie` (`name=value`), its CSRF token
    /// read from the product's page.
    async fn with_cookie(serving: &Serving, product: &str, cookie: String) -> Portal {
        let mut portal = Portal {
            base: serving.url.clone(),
            cookie,
            csrf: String::new(),
        };
        let page = portal.get(&format!("/ui/products/{product}")).await.1;
        portal.csrf = common::between(&page, "name=\"csrf\" value=\"", "\"").to_owned();
        portal
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let answer = client()
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("answered");
        (
            answer.status().as_u16(),
            answer.text().await.unwrap_or_default(),
        )
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("csrf", &self.csrf);
        for (key, value) in fields {
            form.append_pair(key, value);
        }
        let answer = client()
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .await
            .expect("answered");
        (
            answer.status().as_u16(),
            answer.text().await.unwrap_or_default(),
        )
    }
}

/// The `name=value` of the session cookie an answer sets.
fn session_cookie(answer: &reqwest::Response) -> String {
    common::set_cookie(answer, "lookout_session").expect("a session cookie")
}

async fn api(serving: &Serving, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let answer = client()
        .request(method, format!("{}{path}", serving.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("answered");
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every request a capture server got, headers and body, as one text to search.
fn everything_received(sink: &CaptureServer) -> String {
    let requests = sink.requests();
    let shown: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {} {:?} {}", r.method, r.path, r.headers, r.text()))
        .collect();
    shown.join("\n")
}

#[test]
fn a_stored_secret_never_follows_a_changed_url() {
    let first = CaptureServer::start();
    let elsewhere = CaptureServer::start();
    let place = Place::new(TOKEN, ENGINE).never_printing(&[BOT_TOKEN]);
    let first_url = format!("{}/bot", first.url());
    let moved_url = format!("{}/stolen", elsewhere.url());
    place.cli(&[
        "products",
        "add",
        "p1",
        "bot",
        "--service",
        "errbot",
        "--set",
        &format!("url={first_url}"),
        "--set",
        &format!("token={BOT_TOKEN}"),
    ]);
    let serving = place.serve(&["--no-workers"]);
    runtime().block_on(async {
        let portal = Portal::open(&place, &serving, "p1").await;
        let edit = "/ui/products/p1/services/bot";
        let test = "/ui/products/p1/services/bot/test";

        // The URL changed, the token left empty ("keep"): refused, beside the token.
        let moved = [("opt.url", moved_url.as_str()), ("opt.token", "")];
        let (status, page) = portal.post(edit, &moved).await;
        assert_eq!(status, 422, "{page}");
        assert!(
            page.contains("`url` changed: enter this secret again"),
            "{page}"
        );
        assert!(!page.contains(BOT_TOKEN), "{page}");

        // Nothing was saved: a test event still goes where the token was entered.
        let (status, page) = portal.post(test, &[("model", "Item")]).await;
        assert_eq!(status, 200, "{page}");
        let arrived = first.wait_for(1, Duration::from_secs(10));
        assert_eq!(arrived[0].header("x-lookout-token"), Some(BOT_TOKEN));

        // With a token entered again, the new URL gets that one, never the stored one.
        let entered = [
            ("opt.url", moved_url.as_str()),
            ("opt.token", "a-new-token-1"),
        ];
        let (status, page) = portal.post(edit, &entered).await;
        assert_eq!(status, 303, "{page}");
        portal.post(test, &[("model", "Item")]).await;
        let arrived = elsewhere.wait_for(1, Duration::from_secs(10));
        assert_eq!(arrived[0].header("x-lookout-token"), Some("a-new-token-1"));

        // The API replaces a service whole: a PUT naming a new URL without the token
        // stores no token, so none can follow it there either.
        let services = json!({"services": {"bot": {"service": "errbot", "url": moved_url}}});
        let (status, shown) =
            api(&serving, reqwest::Method::PUT, "/v1/products/p1", services).await;
        assert_eq!(status, 200, "{shown}");
        assert!(shown["services"]["bot"].get("token").is_none(), "{shown}");
        portal.post(test, &[("model", "Item")]).await;
        let arrived = elsewhere.wait_for(2, Duration::from_secs(10));
        assert_eq!(arrived[1].header("x-lookout-token"), None);
    });
    assert!(!everything_received(&elsewhere).contains(BOT_TOKEN));
}

#[test]
fn predictable_bootstrap_tokens_are_refused_saying_why() {
    let place = Place::new(TOKEN, ENGINE);
    let refused = [
        ("0123456789abcdef", "sequences"),
        ("1234567890123456", "sequences"),
        ("abcdefghijklmnop", "sequences"),
        ("passwordpassword", "repeats"),
    ];
    for (token, why) in refused {
        let started = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database"])
            .arg(place.db())
            .env("LOOKOUT_TOKEN", token)
            .output()
            .expect("run serve");
        assert_eq!(started.status.code(), Some(2), "{token} was taken");
        let said = String::from_utf8_lossy(&started.stderr);
        assert!(
            said.contains("too predictable") && said.contains(why),
            "{said}"
        );
        assert!(!said.contains(token), "the token was echoed: {said}");
    }
}

/// Broker and SMTP hosts on loopback, in the spellings resolvers take, and the option
/// each is refused for.
const LOOPBACK_DESTINATIONS: &[(&str, &str)] = &[
    (r#"{"service": "redis", "url": "redis://127.0.0.1"}"#, "url"),
    (r#"{"service": "nats", "url": "nats://127.1"}"#, "url"),
    (r#"{"service": "mqtt", "url": "mqtt://localhost"}"#, "url"),
    (
        r#"{"service": "rabbitmq", "url": "amqp://guest:pw-9x@[::1]"}"#,
        "url",
    ),
    (
        r#"{"service": "email", "host": "127.0.0.1", "from": "a@example.com", "to": ["b@example.com"]}"#,
        "host",
    ),
];

#[test]
fn loopback_broker_and_smtp_hosts_are_refused_when_configured() {
    // The default guard: loopback is not allowed (nothing here is ever sent).
    let place = Place::new(TOKEN, "[engine]\n");
    let serving = place.serve(&["--no-workers"]);
    runtime().block_on(async {
        for (service, option) in LOOPBACK_DESTINATIONS {
            let table: Value = serde_json::from_str(service).expect("JSON");
            let body = json!({ "services": { "s": table } });
            let (status, answer) =
                api(&serving, reqwest::Method::PUT, "/v1/products/p1", body).await;
            assert_eq!(status, 400, "accepted: {service}");
            let said = answer["error"].as_str().unwrap_or_default();
            assert!(
                said.contains(&format!("[services.s] {option}:"))
                    && said.contains("SSRF guard will refuse"),
                "{said}"
            );
            assert!(!said.contains("pw-9x"), "a password was echoed: {said}");
        }
    });
}

/// A client whose connections come from `local` (a loopback address).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(local.parse::<std::net::IpAddr>().expect("an address"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// The status and `Retry-After` of a GET of the product list with `token`, from
/// `client`, for the client named in `X-Forwarded-For` (read only from a trusted proxy).
async fn with_token(
    client: &reqwest::Client,
    serving: &Serving,
    forwarded_for: &str,
    token: &str,
) -> (u16, Option<String>) {
    let answer = client
        .get(format!("{}/v1/products", serving.url))
        .bearer_auth(token)
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .expect("answered");
    let retry = answer.headers().get("retry-after");
    let retry = retry.and_then(|v| v.to_str().ok()).map(str::to_owned);
    (answer.status().as_u16(), retry)
}

async fn sign_in(client: &reqwest::Client, serving: &Serving, token: &str) -> u16 {
    sign_in_answer(client, serving, token)
        .await
        .status()
        .as_u16()
}

/// The answer to the sign-in form sent with `token`, as a browser sends it.
async fn sign_in_answer(
    client: &reqwest::Client,
    serving: &Serving,
    token: &str,
) -> reqwest::Response {
    let form = client
        .get(format!("{}/ui/signin", serving.url))
        .send()
        .await
        .expect("the form");
    let cookie = common::set_cookie(&form, "lookout_signin").expect("a sign-in cookie");
    let page = form.text().await.expect("a page");
    let nonce = common::between(&page, "name=\"nonce\" value=\"", "\"").to_owned();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("nonce", &nonce)
        .append_pair("token", token)
        .finish();
    client
        .post(format!("{}/ui/signin", serving.url))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("answered")
}

#[test]
fn wrong_tokens_are_throttled_per_client_address_behind_a_trusted_proxy() {
    const GUESSES: usize = 30; // the server's MAX_FAILURES
    let place = Place::new(TOKEN, ENGINE);
    let serving = place.serve(&["--no-workers", "--trusted-proxy", "127.0.0.3"]);
    runtime().block_on(async {
        let proxy = client_from("127.0.0.3");
        for n in 0..GUESSES {
            let guess = format!("wrong-guess-{n:04}-7f3e9a1c5b");
            let (status, _) = with_token(&proxy, &serving, "127.0.0.50", &guess).await;
            assert_eq!(status, 401, "guess {n}");
        }
        // The guesser is held back, whatever it sends, for the rest of the window…
        let (status, retry) = with_token(&proxy, &serving, "127.0.0.50", "one-more-guess-1").await;
        assert_eq!(status, 429);
        let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
        assert!((1..=60).contains(&retry), "{retry}");
        // …while the right token's holder, behind the same proxy, is not.
        let (status, _) = with_token(&proxy, &serving, "127.0.0.51", TOKEN).await;
        assert_eq!(status, 200);

        // Console sign-ins count the same way, per address.
        let browser = client_from("127.0.0.4");
        for n in 0..GUESSES {
            let status = sign_in(&browser, &serving, &format!("not-the-token-{n}")).await;
            assert_eq!(status, 401, "sign-in {n}");
        }
        assert_eq!(sign_in(&browser, &serving, TOKEN).await, 429);
        assert_eq!(
            sign_in(&client_from("127.0.0.5"), &serving, TOKEN).await,
            200
        );

        let metrics = client()
            .get(format!("{}/metrics", serving.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        for counted in [
            "lookout_auth_failures_total{door=\"api\"} 30",
            "lookout_auth_failures_total{door=\"console\"} 30",
            "lookout_refused_total{reason=\"wrong_tokens\"} 2",
        ] {
            assert!(metrics.contains(counted), "no `{counted}` in:\n{metrics}");
        }
        assert!(!metrics.contains("wrong-guess") && !metrics.contains(TOKEN));
    });
}

#[test]
fn an_idempotency_key_with_a_tab_or_space_inside_is_refused() {
    let place = Place::new(TOKEN, ENGINE);
    place.product("http://127.0.0.1:9/in", None);
    let serving = place.serve(&["--no-workers"]);
    runtime().block_on(async {
        for (key, want) in [("one\ttwo", 400), ("one two", 400), ("one-two", 202)] {
            let answer = client()
                .post(format!("{}/v1/products/p1/events", serving.url))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(lookout::samples::ALL[0].1)
                .send()
                .await
                .expect("answered");
            let status = answer.status().as_u16();
            let said = answer.text().await.unwrap_or_default();
            assert_eq!(status, want, "{key:?}: {said}");
            if want == 400 {
                assert!(said.contains("visible ASCII"), "{said}");
            }
        }
    });
}

#[test]
fn log_lines_carry_no_colours_when_stderr_is_not_a_terminal() {
    let place = Place::new(TOKEN, ENGINE);
    let mut command = Command::new(env!("CARGO_BIN_EXE_lookout"));
    command
        .args([
            "serve",
            "--no-workers",
            "--listen",
            "127.0.0.1:0",
            "--database",
        ])
        .arg(place.db())
        .env("LOOKOUT_TOKEN", TOKEN)
        .env("LOOKOUT_LOG", "info")
        .stderr(std::process::Stdio::piped());
    let (child, listening) =
        common::spawn_reading_first_line(&mut command, Duration::from_secs(20));
    // Once it answers, its SIGTERM handler is in place: it logs its shutdown, then exits.
    let url = listening
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("its URL")
        .to_owned();
    let healthz = runtime().block_on(async { client().get(format!("{url}/healthz")).send().await });
    assert_eq!(healthz.expect("answered").status(), 200);
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let output = child.wait_with_output().expect("exits");
    let logged = String::from_utf8_lossy(&output.stderr);
    assert!(logged.contains("shutting down"), "nothing logged: {logged}");
    assert!(!logged.contains('\u{1b}'), "colours in a pipe: {logged:?}");
}

/// Where a GET of `path` with `cookie` goes: `(status, Location)`.
async fn visit(serving: &Serving, path: &str, cookie: &str) -> (u16, String) {
    let answer = client()
        .get(format!("{}{path}", serving.url))
        .header("cookie", cookie)
        .send()
        .await
        .expect("answered");
    let location = answer.headers().get("location");
    let location = location.and_then(|v| v.to_str().ok()).unwrap_or_default();
    (answer.status().as_u16(), location.to_owned())
}

/// The secret part of a `lookout_session=SECRET` cookie.
fn secret_of(cookie: &str) -> &str {
    cookie.trim_start_matches("lookout_session=")
}

/// Whether any of the SQLite files of `place` holds `text`.
fn database_holds(place: &Place, text: &str) -> bool {
    ["", "-wal"].iter().any(|suffix| {
        let path = format!("{}{suffix}", place.db().display());
        let bytes = std::fs::read(path).unwrap_or_default();
        bytes.windows(text.len()).any(|w| w == text.as_bytes())
    })
}

#[test]
fn signing_out_ends_the_session_for_every_copy_of_its_cookie() {
    let place = Place::new(TOKEN, ENGINE);
    place.product("http://127.0.0.1:9/hook", None);
    let serving = place.serve(&["--no-workers"]);
    runtime().block_on(async {
        let signed_in = sign_in_answer(&client(), &serving, TOKEN).await;
        assert_eq!(signed_in.status(), 200);
        let admin = Portal::with_cookie(&serving, "p1", session_cookie(&signed_in)).await;
        let copy = admin.cookie.clone();
        assert!(
            !database_holds(&place, secret_of(&copy)),
            "only a digest is kept"
        );

        let (status, _) = admin.post("/ui/signout", &[]).await;
        assert_eq!(status, 303);
        // The copied cookie, sent as an attacker who kept it would: the sign-in page.
        let (status, location) = visit(&serving, "/ui/products/p1", &copy).await;
        assert_eq!((status, location.as_str()), (303, "/ui/signin"));
        let (status, _) = visit(&serving, "/ui/products", &copy).await;
        assert_eq!(status, 303);
    });
}

#[test]
fn an_admin_lists_and_revokes_sessions_without_seeing_their_cookies() {
    let place = Place::new(TOKEN, ENGINE);
    place.product("http://127.0.0.1:9/hook", None);
    let serving = place.serve(&["--no-workers"]);
    runtime().block_on(async {
        let signed_in = sign_in_answer(&client(), &serving, TOKEN).await;
        let cookie = session_cookie(&signed_in);
        assert_eq!(visit(&serving, "/ui/products/p1", &cookie).await.0, 200);

        let listed = place.cli(&["sessions", "list"]);
        assert!(!listed.contains(secret_of(&cookie)), "{listed}");
        let sessions = place.cli_json(&["sessions", "list"]);
        let sessions = sessions.as_array().expect("a list");
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert_eq!(sessions[0]["product"], Value::Null, "an admin session");
        let id = sessions[0]["id"].as_str().expect("an id");
        assert!(id.starts_with("ses_") && !cookie.contains(id));

        let revoked = place.cli(&["sessions", "revoke", id]);
        assert!(revoked.contains(id) && !revoked.contains(secret_of(&cookie)));
        assert_eq!(visit(&serving, "/ui/products/p1", &cookie).await.0, 303);
        assert!(
            place
                .cli_json(&["sessions", "list"])
                .as_array()
                .unwrap()
                .is_empty()
        );
        let again = place.cli_output(&["sessions", "revoke", id]);
        assert!(!again.status.success(), "a second revoke finds nothing");
    });
}

/// `lookout portal-link` on `place`'s database: (link, what it says on stderr) or why not.
fn portal_link(
    place: &Place,
    serving: &Serving,
    extra: &[&str],
) -> Result<(String, String), String> {
    let mut args = vec!["portal-link", "p1", "--url", &serving.url];
    args.extend(extra);
    let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(&args)
        .arg("--database")
        .arg(place.db())
        .env("LOOKOUT_TOKEN", TOKEN)
        .output()
        .expect("run lookout");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    output
        .status
        .success()
        .then_some((stdout, stderr.clone()))
        .ok_or(stderr)
}

#[test]
fn a_revoked_portal_link_opens_nothing_and_ends_the_sessions_it_opened() {
    let place = Place::new(TOKEN, ENGINE);
    place.product("http://127.0.0.1:9/hook", None);
    let serving = place.serve(&["--no-workers"]);
    runtime().block_on(async {
        let (link, said) = portal_link(&place, &serving, &[]).expect("a link");
        let sig = link.rsplit("sig=").next().expect("a signature");
        let opened = client().get(&link).send().await.expect("the link");
        let cookie = session_cookie(&opened);
        assert_eq!(visit(&serving, "/ui/products/p1", &cookie).await.0, 200);

        let links = place.cli_json(&["portal-link", "list"]);
        let links = links.as_array().expect("a list");
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0]["product"], "p1");
        let id = links[0]["id"].as_str().expect("an id");
        assert!(said.contains(id), "the id is printed with the link: {said}");
        let listed = place.cli(&["portal-link", "list"]) + &place.cli(&["sessions", "list"]);
        assert!(listed.contains(id) && !listed.contains(sig), "{listed}");
        assert!(!listed.contains(secret_of(&cookie)) && !said.contains(sig));

        // An id alone (read from the list) opens nothing: the signature is needed.
        let bare = format!("{}/ui/link?id={id}&sig=", serving.url);
        assert_eq!(client().get(bare).send().await.unwrap().status(), 403);

        place.cli(&["portal-link", "revoke", id]);
        let (status, location) = visit(&serving, "/ui/products/p1", &cookie).await;
        assert_eq!((status, location.as_str()), (303, "/ui/signin"));
        let reopened = client().get(&link).send().await.expect("the link");
        assert_eq!(reopened.status(), 403);
        let page = reopened.text().await.unwrap_or_default();
        assert!(page.contains("revoked") && !page.contains(sig), "{page}");
        assert!(
            place
                .cli_json(&["sessions", "list"])
                .as_array()
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn a_portal_link_longer_than_the_cap_is_refused_when_made_and_when_opened() {
    let place = Place::new(TOKEN, ENGINE);
    place.product("http://127.0.0.1:9/hook", None);
    let serving = place.serve(&["--no-workers", "--max-link-ttl", "2h"]);
    runtime().block_on(async {
        let refused = portal_link(&place, &serving, &["--ttl", "8d"]).unwrap_err();
        assert!(refused.contains("at most 7days"), "{refused}");
        assert!(
            place
                .cli_json(&["portal-link", "list"])
                .as_array()
                .unwrap()
                .is_empty()
        );

        // A cap of the config file's, for the command as for serve.
        place.write_config(&format!("{ENGINE}[server]\nmax_link_ttl = \"2h\"\n"));
        let config = place.config().display().to_string();
        let refused = portal_link(&place, &serving, &["--ttl", "3h", "--config", &config]);
        assert!(refused.unwrap_err().contains("at most 2h"));

        // Made under the default cap, longer than this server's: refused when opened.
        let (long, _) = portal_link(&place, &serving, &["--ttl", "3h"]).expect("a link");
        assert_eq!(client().get(&long).send().await.unwrap().status(), 403);
        let (short, _) = portal_link(&place, &serving, &["--ttl", "1h"]).expect("a link");
        assert_eq!(client().get(&short).send().await.unwrap().status(), 200);
    });
}
