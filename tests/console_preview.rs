//! The console's *Preview a change* page (server/src/console/preview.rs) over HTTP on
//! loopback: the console's router on a SQLite store holding two products, their
//! services (a Slack webhook URL with its key, a Telegram bot token) and stored events.
//! What an unchanged or a changed table shows, problems, secrets, scope, the limit.
//! Nothing is sent: no worker runs, and the targets are never contacted by a preview.
//! The same page in a real browser: tests/console.rs.

mod common;

use std::sync::Arc;

use lookout::delivery::Transport;
use lookout::delivery::ssrf::Guard;
use lookout_server::console::{self, Console, Keys, PreviewLimits, Previews, Scope};
use lookout_server::store::{self, NewDelivery, NewEvent, Store, instances_from_table};
use serde_json::json;
use tokio::sync::Notify;
// Links every service into the test binary.
use services as _;

const ADMIN_TOKEN: &str = "preview-test-admin-token-0123456789abcdef";
/// The key part of the Slack webhook URL.
const SLACK_KEY: &str = "T0QZXW7/B0QZXW8/xk4Vj9Rt2Lm8Np3Hq";
const BOT_TOKEN: &str = "987654321:AAxq7Zr2Wk9Vb4Jt6Nm3Pd8Ls5Hf1Gc";

fn services() -> serde_json::Value {
    json!({
        "slack": {"url": format!("https://hooks.slack.com/services/{SLACK_KEY}"), "channel": "#dev"},
        "tg": {"service": "telegram", "bot_token": BOT_TOKEN, "chat_id": "-1001234"},
    })
}

/// The console on a fresh store: product `p1` with [`services`] and one stored event
/// per sample model (five), product `p2` with none.
struct Site {
    base: String,
    /// An admin session's cookie.
    admin: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Site {
    async fn start() -> Site {
        Site::start_with(PreviewLimits::default()).await
    }

    /// [`Site::start`] with these limits on previews.
    async fn start_with(limits: PreviewLimits) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lookout.db").display().to_string();
        let store = store::open(&path).await.unwrap();
        let table = services();
        let instances = instances_from_table(table.as_object().unwrap()).unwrap();
        store.put_product("p1", &instances).await.unwrap();
        store.put_product("p2", &instances).await.unwrap();
        let samples: Vec<&str> = lookout::samples::ALL.iter().map(|(_, p)| *p).collect();
        add_events(store.as_ref(), "p1", &samples).await;
        let base = serve(store.clone(), limits).await;
        Site {
            base,
            admin: session(store.as_ref(), &Scope::Admin).await,
            store,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn get(&self, cookie: &str, product: &str) -> (u16, String) {
        let answer = self
            .client
            .get(format!("{}/ui/products/{product}/preview", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    }

    /// Posts `table` to the preview of `product`, with the CSRF token of the session's
    /// form (of `p1`, which every session here may see).
    async fn post(&self, cookie: &str, product: &str, table: &str) -> (u16, String) {
        let (_, form) = self.get(cookie, "p1").await;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "csrf",
                common::between(&form, "name=\"csrf\" value=\"", "\""),
            )
            .append_pair("services", table)
            .append_pair("window", "24h")
            .append_pair("service", "")
            .finish();
        let answer = self
            .client
            .post(format!("{}/ui/products/{product}/preview", self.base))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    }

    /// The table the page prefills, as a browser would submit it.
    async fn prefilled(&self) -> String {
        let (status, page) = self.get(&self.admin, "p1").await;
        assert_eq!(status, 200, "{page}");
        let start = page
            .find("<textarea id=\"services\"")
            .expect("the text box");
        unescape(common::between(&page[start..], ">", "</textarea>"))
    }

    async fn deliveries(&self) -> usize {
        let filter = store::DeliveryFilter::default();
        self.store.deliveries(&filter).await.unwrap().len()
    }
}

/// A new session's cookie, kept in `store` as signing in keeps it.
async fn session(store: &dyn Store, scope: &Scope) -> String {
    let until = store::now_ms() + 3_600_000;
    let keys = Keys::from_admin_token(ADMIN_TOKEN);
    let value = console::start_session(store, &keys, scope, None, until).await;
    let value = value.unwrap();
    format!("lookout_session={}", value.expect("stored"))
}

async fn add_events(store: &dyn Store, product: &str, payloads: &[&str]) {
    let received_at = store::now_ms() - 60_000;
    for (i, payload) in payloads.iter().enumerate() {
        let deliveries = [("slack", "slack"), ("tg", "telegram")]
            .iter()
            .map(|(instance, service)| {
                let id = format!("msg_{product}_{i}_{instance}");
                NewDelivery::in_own_lane(product, &id, instance, service)
            })
            .collect();
        let event = NewEvent {
            id: format!("evt_{product}_{i:04}"),
            product: product.into(),
            payload: (*payload).into(),
            received_at: received_at + i as i64,
            idempotency: None,
            routed_with: None,
            trace_context: None,
            deliveries,
        };
        store.accept(&event).await.unwrap();
    }
}

/// The console's router alone, under `/ui`, on a free loopback port.
async fn serve(store: Arc<dyn Store>, limits: PreviewLimits) -> String {
    let settings = lookout::settings::Settings {
        allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let console = Console {
        store,
        wake: Arc::new(Notify::new()),
        guard: Guard::for_settings(&settings),
        routes: Arc::new(lookout_server::routing::RouteCache::new(settings.clone())),
        transport: Transport::new(settings).unwrap(),
        keys: Keys::from_admin_token(ADMIN_TOKEN),
        previews: Arc::new(Previews::new(limits, Arc::default())),
        guesses: Arc::new(lookout_server::guessing::Guesses::new(Arc::default())),
        max_link_ttl: console::MAX_LINK_TTL,
    };
    let app = axum::Router::new().nest_service("/ui", console::router(console));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// HTML text as a browser reads it (the escapes askama writes).
fn unescape(html: &str) -> String {
    html.replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The number in `<strong id="ID">N</strong>` of the report's summary.
fn figure(page: &str, id: &str) -> usize {
    common::between(page, &format!("<strong id=\"{id}\">"), "<")
        .parse()
        .unwrap()
}

/// No piece of 8 characters or more of `secret` is on the page.
fn assert_nothing_of(secret: &str, page: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for piece in chars.windows(8) {
        let piece: String = piece.iter().collect();
        assert!(
            !page.contains(&piece),
            "`{piece}` of a secret is on the page"
        );
    }
}

#[tokio::test]
async fn the_prefilled_table_unchanged_shows_every_request_unchanged() {
    let site = Site::start().await;
    let table = site.prefilled().await;
    assert!(
        table.contains("[services.tg]\nservice = \"telegram\"\n"),
        "{table}"
    );
    assert!(table.contains("channel = \"#dev\""), "{table}");
    let (status, page) = site.post(&site.admin, "p1", &table).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(figure(&page, "events"), 5);
    // Slack and Telegram both announce the five created samples.
    assert_eq!(figure(&page, "unchanged"), 10, "{page}");
    for id in ["changed", "new", "removed"] {
        assert_eq!(figure(&page, id), 0, "{id}: {page}");
    }
    assert!(!page.contains("<pre class=\"diff\">"), "{page}");
    assert!(!page.contains("id=\"cut\""));
}

#[tokio::test]
async fn a_changed_option_shows_exactly_the_changed_requests_and_stores_nothing() {
    let site = Site::start().await;
    let table = site.prefilled().await.replace("#dev", "#ops");
    let (status, page) = site.post(&site.admin, "p1", &table).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (figure(&page, "changed"), figure(&page, "unchanged")),
        (5, 5)
    );
    let changed = page
        .matches("<section class=\"comparison c-changed\">")
        .count();
    assert_eq!(changed, 5, "one diff per Slack request:\n{page}");
    assert!(
        !page.contains("· tg: <span"),
        "Telegram is unchanged:\n{page}"
    );
    let added: Vec<&str> = page
        .lines()
        .filter(|line| line.contains("<span class=\"add\">"))
        .collect();
    let removed = page.matches("<span class=\"del\">").count();
    assert_eq!((added.len(), removed), (5, 5), "{page}");
    assert_eq!(
        unescape(added[0]),
        "<span class=\"add\">+        \"channel\": \"#ops\"</span>"
    );
    // Nothing was stored or sent.
    let product = site.store.product("p1").await.unwrap().unwrap();
    let slack = product.instances.iter().find(|i| i.name == "slack");
    assert_eq!(slack.unwrap().options["channel"], "#dev");
    assert_eq!(site.deliveries().await, 10);
}

#[tokio::test]
async fn problems_are_shown_with_their_line_and_nothing_is_compared() {
    let site = Site::start().await;
    let broken = site
        .prefilled()
        .await
        .replace("[services.tg]", "[services.tg");
    let (status, page) = site.post(&site.admin, "p1", &broken).await;
    assert_eq!(status, 422);
    assert!(page.contains("<ul class=\"problems\""), "{page}");
    assert!(page.contains("line "), "{page}");
    assert!(
        !page.contains("id=\"report\""),
        "nothing was compared:\n{page}"
    );

    let table = site.prefilled().await.replace("chat_id", "chat_di");
    let (status, page) = site.post(&site.admin, "p1", &table).await;
    assert_eq!(status, 422);
    let line = table
        .lines()
        .position(|l| l.starts_with("chat_di"))
        .unwrap()
        + 1;
    let problem = format!("line {line}: [services.tg] chat_di: unknown option");
    assert!(unescape(&page).contains(&problem), "{problem}:\n{page}");
    assert!(!page.contains("id=\"report\""), "{page}");
}

#[tokio::test]
async fn no_part_of_a_secret_is_on_the_page() {
    let site = Site::start().await;
    let (_, form) = site.get(&site.admin, "p1").await;
    let table = site.prefilled().await;
    assert!(table.contains("# slack: url not shown (secret)"), "{table}");
    // A changed table, a secret written out (the bot token as it is stored, with an
    // extra space: a change) and a problem: every page comes back without them.
    let changed = table.replace("#dev", "#ops") + &format!("bot_token = \"{BOT_TOKEN} \"\n");
    let (_, report) = site.post(&site.admin, "p1", &changed).await;
    assert!(report.contains("id=\"report\""), "{report}");
    // The Slack key pasted where it is not a secret: redacted all the same.
    let wrong = format!(
        "{table}\n[services.more]\nservice = \"telegram\"\nbot_token = \"{BOT_TOKEN}\"\n\
         api_url = \"https://hooks.slack.com/services/{SLACK_KEY}\"\nchat_di = \"x\"\n"
    );
    let (status, problem) = site.post(&site.admin, "p1", &wrong).await;
    assert_eq!(status, 422, "{problem}");
    for page in [&form, &report, &problem] {
        assert_nothing_of(SLACK_KEY, page);
        assert_nothing_of(BOT_TOKEN, page);
    }
}

#[tokio::test]
async fn a_portal_session_previews_its_product_only() {
    let site = Site::start().await;
    let portal = session(site.store.as_ref(), &Scope::Product("p1".into())).await;
    assert_eq!(site.get(&portal, "p1").await.0, 200);
    let (status, page) = site.get(&portal, "p2").await;
    assert_eq!(status, 403, "{page}");
    let table = site.prefilled().await;
    let (status, page) = site.post(&portal, "p2", &table).await;
    assert_eq!(status, 403, "{page}");
    assert!(!page.contains("id=\"report\""));
    let (status, page) = site.post(&portal, "p1", &table).await;
    assert_eq!(status, 200, "{page}");
}

#[tokio::test]
async fn only_the_newest_events_are_compared_and_the_page_says_so() {
    let site = Site::start().await;
    let item = lookout::samples::for_model("Item").unwrap();
    add_events(site.store.as_ref(), "p2", &vec![item; 201]).await;
    let (status, page) = site.post(&site.admin, "p2", &site.prefilled().await).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(figure(&page, "events"), 200);
    assert!(page.contains("only the newest 200 were compared"), "{page}");
    // The oldest of the 201 was left out.
    assert!(!page.contains("evt_p2_0000 "), "{page}");
    assert!(page.contains("evt_p2_0001 "), "{page}");
}

#[tokio::test]
async fn a_table_too_long_or_with_too_many_services_is_refused_with_its_size() {
    let site = Site::start().await;
    let table = site.prefilled().await;
    let long = format!("{table}\n# {}\n", "x".repeat(70 * 1024));
    let (status, page) = site.post(&site.admin, "p1", &long).await;
    assert_eq!(status, 413, "{page}");
    assert!(
        page.contains("the table is 71 KiB long; a preview reads at most 64 KiB"),
        "{page}"
    );
    assert!(!page.contains("id=\"report\""));
    // A form far larger than any table is not even read.
    let huge = "x".repeat(400 * 1024);
    let (status, page) = site.post(&site.admin, "p1", &huge).await;
    assert_eq!(status, 413, "{page}");
    assert!(
        page.contains("This form is larger than the page accepts"),
        "{page}"
    );

    let many: String = (0..21)
        .map(|i| {
            format!(
                "[services.hook{i}]\nservice = \"webhook\"\nurls = [\"http://127.0.0.1:9/{i}\"]\n"
            )
        })
        .collect();
    let (status, page) = site.post(&site.admin, "p1", &many).await;
    assert_eq!(status, 413, "{page}");
    assert!(
        unescape(&page)
            .contains("the table has 21 [services.NAME] tables; a preview compares at most 20"),
        "{page}"
    );
    assert!(!page.contains("id=\"report\""));
}

#[tokio::test]
async fn with_many_services_fewer_events_are_compared_and_the_page_says_why() {
    let site = Site::start_with(PreviewLimits {
        max_renders: 6,
        ..PreviewLimits::default()
    })
    .await;
    let (status, page) = site.post(&site.admin, "p1", &site.prefilled().await).await;
    assert_eq!(status, 200, "{page}");
    // Two services: three events, the newest.
    assert_eq!(figure(&page, "events"), 3);
    assert!(
        unescape(&page).contains(
            "only the newest 3 were compared (a preview makes at most 6 event × service \
             comparisons, and the table has 2 services)"
        ),
        "{page}"
    );
    assert!(page.contains("evt_p1_0004 ") && !page.contains("evt_p1_0001 "));
}

#[tokio::test]
async fn a_preview_out_of_time_stops_and_says_so() {
    let site = Site::start_with(PreviewLimits {
        timeout: std::time::Duration::ZERO,
        ..PreviewLimits::default()
    })
    .await;
    let (status, page) = site.post(&site.admin, "p1", &site.prefilled().await).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(figure(&page, "events"), 0);
    assert!(
        page.contains("The preview stopped at its time limit (0s)"),
        "{page}"
    );
}
