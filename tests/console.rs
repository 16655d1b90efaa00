//! The web console of `lookout serve`, driven by a real headless Chromium through
//! WebDriver (Debian's `chromium` and `chromium-driver`, from scripts/test-deps.sh)
//! against the real binary, its SQLite store and a local capture server.
//!
//! One browser session for the whole binary (it has its own `main`): the flows run in
//! order, each building on the last. With `LOOKOUT_SCREENSHOTS=DIR` (`make screenshots`)
//! the main pages are saved there as PNG.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use lookout_testkit::{CaptureServer, Reply};
use serde_json::{Value, json};

const TOKEN: &str = "console-test-token-0123456789abcdef";
/// In every target URL: a secret path that must never reach a page.
const URL_KEY: &str = "K3YxSECRETx9";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn main() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run `bash scripts/test-deps.sh` (Debian chromium, chromium-driver)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(Instant::now()));
}

async fn run(started: Instant) {
    let sink = CaptureServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let serving = Serving::start(dir.path());
    let driver = Driver::start().await;
    let mut console = Console {
        browser: driver.session().await,
        base: serving.url.clone(),
        sink: sink.url(),
        sources: Vec::new(),
        shots: std::env::var_os("LOOKOUT_SCREENSHOTS").map(PathBuf::from),
    };

    let mut passed = Passed::default();
    console.sign_in().await;
    passed.flow("signs_in_with_the_admin_token");
    console.products_and_a_form_with_a_problem().await;
    passed.flow("a_missing_option_shows_beside_its_field_then_saves");
    console.test_send().await;
    passed.flow("a_test_event_is_delivered_and_a_service_switches_off_and_on");
    console.dead_then_redelivered(&sink, &serving).await;
    passed.flow("a_dead_delivery_is_redelivered_and_markup_shows_as_text");
    console.catalogue_and_overview().await;
    passed.flow("catalogue_and_overview");
    console.preview_a_change(&serving).await;
    passed.flow("a_changed_option_is_previewed_as_a_diff");
    console.coalescing_set_in_the_form().await;
    passed.flow("coalescing_is_set_in_the_form_and_its_problems_show_beside_their_fields");
    console.forms_without_the_csrf_token_are_refused().await;
    passed.flow("forms_without_the_csrf_token_are_refused");
    console
        .portal_link_sees_one_product_until_it_expires(&serving)
        .await;
    passed.flow("a_portal_link_sees_one_product_until_it_expires");
    console.no_secret_in_any_page();
    passed.flow("no_secret_and_no_script_in_any_page");
    console.browser.quit().await;
    passed.finish(started.elapsed());
}

/// Counts the flows like the test harness does (scripts/test.sh adds up its lines); a
/// flow that fails panics, which fails the binary.
#[derive(Default)]
struct Passed(usize);

impl Passed {
    fn flow(&mut self, name: &str) {
        println!("test {name} ... ok");
        self.0 += 1;
    }

    fn finish(self, took: Duration) {
        println!(
            "\ntest result: ok. {} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
            self.0,
            took.as_secs_f64()
        );
    }
}

/// The flows, on one browser session.
struct Console {
    browser: Browser,
    base: String,
    sink: String,
    /// Every page source seen, to look for secrets at the end.
    sources: Vec<(String, String)>,
    shots: Option<PathBuf>,
}

impl Console {
    async fn open(&mut self, path: &str) -> String {
        self.browser.goto(&format!("{}{path}", self.base)).await;
        self.seen().await
    }

    /// The current page's source, remembered.
    async fn seen(&mut self) -> String {
        let source = self.browser.source().await;
        let url = self.browser.url().await;
        self.sources.push((url, source.clone()));
        source
    }

    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).expect("screenshot dir");
            let png = self.browser.screenshot().await;
            std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
        }
    }

    async fn sign_in(&mut self) {
        let page = self.open("/ui/products").await;
        assert!(page.contains("Admin token"), "not sent to sign in:\n{page}");
        self.shot("signin").await;
        self.browser.type_into("#token", "not-the-token").await;
        self.browser.click("#signin").await;
        // The click returns before the answer is on screen: wait for it.
        self.browser
            .wait_for_text("#signin-problem", "That is not the admin token")
            .await;
        self.seen().await;
        self.browser.type_into("#token", TOKEN).await;
        self.browser.click("#signin").await;
        self.browser.wait_for_text("h1", "Products").await;
    }

    async fn products_and_a_form_with_a_problem(&mut self) {
        for id in ["acme", "other"] {
            self.open("/ui/products").await;
            self.browser.type_into("#id", id).await;
            self.browser
                .click("form[action='/ui/products'] button")
                .await;
            self.browser.wait_for_text("h1", id).await;
        }
        // A required option left empty: the CLI's words, beside that field.
        self.open("/ui/products/acme/services?service=webhook")
            .await;
        self.browser.clear("#name").await;
        self.browser.type_into("#name", "hook").await;
        self.browser.click("#save").await;
        let problem = self.browser.text("#field-urls .error").await;
        assert_eq!(problem, "required option is missing");
        self.seen().await;
        self.shot("add-service").await;
        // Fixed: saved, and listed without its secret URL.
        let url = format!("{}/ok/{URL_KEY}", self.sink);
        self.browser.type_into("#opt-urls", &url).await;
        self.browser.click("#save").await;
        let row = self.browser.text("#service-hook").await;
        assert!(
            row.contains("Webhook") && row.contains("[redacted]"),
            "{row}"
        );
        // Editing: the secret is not filled in, and left empty it is kept.
        self.open("/ui/products/acme/services/hook").await;
        let placeholder = self.browser.attribute("#opt-urls", "placeholder").await;
        assert_eq!(placeholder.as_deref(), Some("stored: leave empty to keep"));
        self.browser.click("#save").await;
        self.browser.find("#service-hook").await;
    }

    async fn test_send(&mut self) {
        self.open("/ui/products/acme").await;
        self.browser.click("#service-hook button.test").await;
        let outcome = self.browser.text("#test-result .outcome").await;
        assert_eq!(outcome, "delivered");
        self.seen().await;
        self.shot("product").await;
        // Switched off and on again: the options stay.
        for (button, state) in [("Disable", "off"), ("Enable", "on")] {
            let switch = "#service-hook form[action$='/switch'] button";
            assert_eq!(self.browser.text(switch).await, button);
            self.browser.click(switch).await;
            self.browser
                .wait_for_text("#service-hook .state", state)
                .await;
            let row = self.browser.text("#service-hook").await;
            assert!(row.contains("urls = \"[redacted]\""), "{row}");
        }
    }

    async fn dead_then_redelivered(&mut self, sink: &CaptureServer, serving: &Serving) {
        // The first attempt and the one retry of the 50 ms schedule fail: dead.
        sink.script(
            "/down",
            [Reply::status(503), Reply::status(503), Reply::ok()],
        );
        self.open("/ui/products/acme/services?service=webhook")
            .await;
        self.browser.clear("#name").await;
        self.browser.type_into("#name", "down").await;
        let url = format!("{}/down/{URL_KEY}", self.sink);
        self.browser.type_into("#opt-urls", &url).await;
        self.browser.click("#save").await;
        self.browser.find("#service-down").await;
        // The item-markup fixture, whose title is HTML and Markdown.
        serving
            .post_event("acme", &lookout_testkit::fixture_json("item-markup"))
            .await;

        let dead = self
            .wait_for_row("/ui/products/acme/deliveries?status=dead&service=webhook")
            .await;
        self.shot("deliveries").await;
        self.open(&dead).await;
        assert_eq!(self.browser.text("#status").await, "dead");
        // The payload shows as text: no element was made of the title's markup.
        let payload = self.browser.text("pre.payload").await;
        assert!(payload.contains(r#"<b>&\"x\"</b> *bold*"#), "{payload}");
        assert!(self.browser.find_all("pre.payload b").await.is_empty());
        let attempts = self.browser.find_all("table.attempts tbody tr").await.len();
        assert_eq!(attempts, 2, "the first try and one retry");

        self.browser.click("#redeliver").await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.browser.text("#status").await != "delivered" {
            assert!(
                Instant::now() < deadline,
                "the redelivery was not delivered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.browser.refresh().await;
        }
        let attempts = self.browser.find_all("table.attempts tbody tr").await.len();
        assert_eq!(attempts, 3, "the redelivery's attempt is listed");
        self.seen().await;
        self.shot("delivery").await;
    }

    /// Waits until the filtered list shows a row; the link to its delivery.
    async fn wait_for_row(&mut self, list: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.open(list).await;
            let links = self.browser.find_all("table.deliveries tbody a").await;
            if let Some(link) = links.first() {
                let href = self.browser.element_attribute(link, "href").await;
                return href.expect("href").replace(&self.base, "");
            }
            assert!(Instant::now() < deadline, "nothing listed at {list}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn catalogue_and_overview(&mut self) {
        let page = self.open("/ui/catalogue").await;
        assert!(page.contains("id=\"slack\"") && page.contains("Example configuration"));
        self.shot("catalogue").await;
        let page = self.open("/ui/products/acme/overview").await;
        assert!(
            page.contains("<svg") && page.contains("class=\"o-delivered\""),
            "{page}"
        );
        assert_eq!(self.browser.text("#dead").await, "0");
        self.shot("overview").await;
    }

    /// Product `other` gets a Slack service (its webhook URL, key and all, on the local
    /// sink) and a stored event; its channel changed in the preview shows as a diff.
    async fn preview_a_change(&mut self, serving: &Serving) {
        let url = format!("{}/slack/{URL_KEY}", self.sink);
        let chat = json!({"service": "slack", "url": url, "channel": "#dev"});
        serving.put_services("other", json!({ "chat": chat })).await;
        serving
            .post_event("other", &lookout_testkit::fixture_json("Item"))
            .await;
        let page = self.open("/ui/products/other/preview").await;
        assert!(page.contains("[services.chat]"), "{page}");
        self.browser.clear("#services").await;
        let table = "[services.chat]\nservice = \"slack\"\nchannel = \"#ops\"\n";
        self.browser.type_into("#services", table).await;
        self.browser.click("#preview").await;
        self.browser
            .wait_for_text("#report .change", "changed")
            .await;
        assert_eq!(self.browser.text("#changed").await, "1");
        let added = self.browser.text("pre.diff .add").await;
        assert_eq!(added, "+        \"channel\": \"#ops\"");
        self.seen().await;
        self.shot("preview").await;
    }

    /// Product `other`'s Slack service coalesces, set in its form's Delivery part: a
    /// window out of range is refused beside its field, then the stored table shows when
    /// the form is opened again.
    async fn coalescing_set_in_the_form(&mut self) {
        let by = "[id='opt-coalesce.by']";
        let window = "[id='opt-coalesce.window']";
        self.open("/ui/products/other/services/chat").await;
        self.browser.type_into(by, "attributes.number").await;
        self.browser.type_into(window, "2h").await;
        self.browser.click("#save").await;
        let problem = self
            .browser
            .text("[id='field-coalesce.window'] .error")
            .await;
        assert_eq!(problem, "2h is out of range: from 1s to 1h");
        self.seen().await;
        self.browser.clear(window).await;
        self.browser.type_into(window, "30s").await;
        self.browser.click("#save").await;
        self.browser.find("#service-chat").await;
        self.open("/ui/products/other/services/chat").await;
        let shown = [
            self.browser.attribute(by, "value").await,
            self.browser.attribute(window, "value").await,
            self.browser
                .attribute("[id='opt-coalesce.max_wait']", "value")
                .await,
            self.browser
                .attribute("[id='opt-digest.window']", "value")
                .await,
        ];
        let shown = shown.map(Option::unwrap_or_default);
        assert_eq!(shown, ["attributes.number", "30s", "", ""]);
    }

    async fn forms_without_the_csrf_token_are_refused(&mut self) {
        let session = self.browser.cookie("lookout_session").await;
        let client = reqwest::Client::new();
        for form in ["", &format!("csrf={}", "0".repeat(64))] {
            let answer = client
                .post(format!(
                    "{}/ui/products/acme/services/hook/remove",
                    self.base
                ))
                .header("cookie", format!("lookout_session={session}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.to_owned())
                .send()
                .await
                .expect("post");
            assert_eq!(answer.status(), 403);
        }
        let page = self.open("/ui/products/acme").await;
        assert!(page.contains("id=\"service-hook\""), "still there");
    }

    async fn portal_link_sees_one_product_until_it_expires(&mut self, serving: &Serving) {
        let ttl = Duration::from_secs(2);
        let link = serving.portal_link("acme", ttl);
        let issued = Instant::now();
        self.browser.delete_cookies().await;
        self.browser.goto(&link).await;
        self.browser.wait_for_text("h1", "acme").await;
        let page = self.seen().await;
        assert!(
            !page.contains("/ui/catalogue"),
            "a portal session has no catalogue"
        );
        for path in [
            "/ui/catalogue",
            "/ui/products",
            "/ui/products/other",
            "/ui/products/other/deliveries",
        ] {
            let page = self.open(path).await;
            assert!(page.contains("<h1>403</h1>"), "{path} was shown:\n{page}");
        }
        assert!(
            issued.elapsed() < ttl,
            "the checks took longer than the link lasts"
        );
        tokio::time::sleep(ttl.saturating_sub(issued.elapsed()) + Duration::from_millis(300)).await;
        let page = self.open("/ui/products/acme").await;
        assert!(
            page.contains("Admin token"),
            "the session outlived the link:\n{page}"
        );
        self.browser.goto(&link).await;
        let page = self.seen().await;
        assert!(page.contains("has expired"), "{page}");
    }

    fn no_secret_in_any_page(&self) {
        assert!(
            self.sources.len() > 15,
            "pages seen: {}",
            self.sources.len()
        );
        for (url, source) in &self.sources {
            for secret in [URL_KEY, TOKEN] {
                assert!(!source.contains(secret), "{url} shows a secret");
            }
            assert!(!source.contains("<script"), "{url} has a script");
        }
    }
}

/// A running `lookout serve`.
struct Serving {
    child: Child,
    url: String,
    /// The database `serve` runs on, where `lookout portal-link` keeps its links.
    database: std::path::PathBuf,
}

impl Serving {
    fn start(dir: &Path) -> Serving {
        let config = dir.join("engine.toml");
        std::fs::write(
            &config,
            "[engine]\nrequest_timeout = \"5s\"\ndeadline = \"6s\"\nallow_networks = [\"127.0.0.0/8\"]\n",
        )
        .expect("write engine.toml");
        let (child, first) = common::spawn_reading_first_line(
            Command::new(env!("CARGO_BIN_EXE_lookout"))
                .args(["serve", "--listen", "127.0.0.1:0", "--database"])
                .arg(dir.join("lookout.db"))
                .args(["--retry-schedule", "50ms", "--poll", "50ms", "--config"])
                .arg(&config)
                .env("LOOKOUT_TOKEN", TOKEN)
                .stderr(Stdio::inherit()),
            Duration::from_secs(20),
        );
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in `{first}`"))
            .to_owned();
        Serving {
            child,
            url,
            database: dir.join("lookout.db"),
        }
    }

    async fn post_event(&self, product: &str, payload: &str) {
        let answer = reqwest::Client::new()
            .post(format!("{}/v1/products/{product}/events", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(payload.to_owned())
            .send()
            .await
            .expect("post event");
        assert_eq!(answer.status(), 202);
    }

    /// Replaces a product's services through the admin API.
    async fn put_services(&self, product: &str, services: Value) {
        let answer = reqwest::Client::new()
            .put(format!("{}/v1/products/{product}", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(json!({ "services": services }).to_string())
            .send()
            .await
            .expect("put product");
        assert!(answer.status().is_success(), "{answer:?}");
    }

    fn portal_link(&self, product: &str, ttl: Duration) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(["portal-link", product, "--url", &self.url, "--ttl"])
            .arg(format!("{}ms", ttl.as_millis()))
            .arg("--database")
            .arg(&self.database)
            .env("LOOKOUT_TOKEN", TOKEN)
            .output()
            .expect("lookout portal-link");
        assert!(output.status.success(), "{output:?}");
        let link = String::from_utf8(output.stdout).expect("UTF-8");
        assert!(!link.contains(TOKEN));
        link.trim().to_owned()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

/// chromedriver, on a free loopback port.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("{url}/status")).await;
            if ready.is_ok_and(|answer| answer.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver { child, url }
    }

    async fn session(&self) -> Browser {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--window-size=1280,1600", "--disable-dev-shm-usage"],
            },
        }}});
        let client = reqwest::Client::new();
        let answer = json_of(
            client
                .post(format!("{}/session", self.url))
                .header("content-type", "application/json")
                .body(capabilities.to_string()),
        )
        .await;
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"));
        Browser {
            client,
            session: format!("{}/session/{id}", self.url),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

/// The few WebDriver commands the flows need (W3C WebDriver over HTTP).
struct Browser {
    client: reqwest::Client,
    session: String,
}

/// A WebDriver answer's JSON.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let answer = request.send().await.expect("WebDriver");
    let body = answer.bytes().await.expect("WebDriver answer");
    serde_json::from_slice(&body).expect("WebDriver JSON")
}

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        json_of(request).await["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let value = self.call(reqwest::Method::POST, path, Some(body)).await;
        if let Some(error) = value.get("error") {
            panic!("WebDriver {path}: {error} {}", value["message"]);
        }
        value
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn refresh(&self) {
        self.post("/refresh", json!({})).await;
    }

    async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn source(&self) -> String {
        self.get("/source")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element `css` selects, waiting a few seconds for it to appear (a click
    /// that submits a form returns before the next page is there).
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(element) = self.find_all(css).await.into_iter().next() {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "no `{css}` on the page:\n{}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let text = self.get(&format!("/element/{element}/text")).await;
        text.as_str().unwrap_or_default().trim().to_owned()
    }

    async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css).await;
        self.element_attribute(&element, name).await
    }

    async fn element_attribute(&self, element: &str, name: &str) -> Option<String> {
        let value = self
            .get(&format!("/element/{element}/attribute/{name}"))
            .await;
        value.as_str().map(str::to_owned)
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn clear(&self, css: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/clear"), json!({}))
            .await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// Waits (a few seconds at most) until `css` holds `text`.
    async fn wait_for_text(&self, css: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.find_all(css).await;
            if let Some(element) = found.first() {
                let shown = self.get(&format!("/element/{element}/text")).await;
                if shown.as_str().is_some_and(|s| s.contains(text)) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` never said `{text}`:\n{}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn cookie(&self, name: &str) -> String {
        let cookie = self.get(&format!("/cookie/{name}")).await;
        cookie["value"].as_str().expect("cookie").to_owned()
    }

    async fn delete_cookies(&self) {
        self.call(reqwest::Method::DELETE, "/cookie", None).await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.get("/screenshot").await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 PNG"))
            .expect("PNG")
    }

    async fn quit(&self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}
