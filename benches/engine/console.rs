//! Figure 8, the web console: how long `serve` takes to answer its main pages for a
//! product with `console_deliveries` stored deliveries (one attempt each, spread over the
//! last day; one in twenty dead, one in twenty failed), on SQLite and, when the bench
//! runs under scripts/with-postgres.sh, on PostgreSQL; and how heavy each page is.
//!
//! The rows are written straight into the database with SQL (the store's own API would
//! take minutes to make 100,000 deliveries with their attempts); the pages are then
//! fetched over HTTP from `serve` running in-process, signed in through a signed link,
//! `PAGE_REQUESTS` times each, one at a time. The time is the whole request on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_server::console::{self, Scope};
use lookout_server::http::{self, ServeConfig};
use lookout_server::store::{self, Store, StoredInstance};
use serde_json::{Value, json};

use crate::stats::{median, ms, percentile, round3};
use crate::{Bench, common};

const TOKEN: &str = "bench-token-0123456789abcdef";
/// Requests per page.
const PAGE_REQUESTS: usize = 60;
const DAY_MS: i64 = 86_400_000;

pub async fn run(bench: &Bench) -> Value {
    let n = bench.plan.console_deliveries;
    let mut results = serde_json::Map::new();
    let dir = tempfile::tempdir_in(&bench.scratch).expect("temporary folder");
    let database = dir.path().join("lookout.db");
    let now = store::now_ms();
    {
        // Migrated by opening, then filled.
        store::open(&database.display().to_string())
            .await
            .expect("store");
        let conn = rusqlite::Connection::open(&database).expect("sqlite");
        conn.execute_batch(&seed_sqlite(n, now))
            .expect("seed SQLite");
    }
    let (sqlite, _lock) = store::open_for_serve(&database.display().to_string())
        .await
        .expect("store");
    results.insert("sqlite".into(), measure(sqlite).await);

    if std::env::var_os("LOOKOUT_TEST_DATABASE_URL").is_some() {
        let schema = lookout_testkit::postgres::TestSchema::create().await;
        let postgres = store::open(&schema.url).await.expect("PostgreSQL store");
        let db = schema.connect().await;
        db.batch_execute(&seed_postgres(n, now))
            .await
            .expect("seed PostgreSQL");
        db.batch_execute("ANALYZE").await.expect("analyze");
        results.insert("postgres".into(), measure(postgres).await);
        drop(db);
        schema.drop_schema().await;
    }
    json!({ "deliveries": n, "requests_per_page": PAGE_REQUESTS, "stores": results })
}

/// Each page's p50/p99 in ms and its weight in bytes (the page and its stylesheet).
async fn measure(store: Arc<dyn Store>) -> Value {
    let url = "http://127.0.0.1:9/console-bench";
    let hook = StoredInstance {
        name: "hook".into(),
        service: "webhook".into(),
        options: json!({ "urls": [url] })
            .as_object()
            .cloned()
            .expect("object"),
    };
    store.put_instance("bench", &hook).await.expect("product");
    let mut config = ServeConfig::new(TOKEN);
    config.settings = common::settings();
    config.workers = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let link_store = store.clone();
    let serving = tokio::spawn(http::run(listener, store, config, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let cookie = sign_in(&client, link_store.as_ref(), &base).await;
    let stylesheet = fetch(&client, &format!("{base}/ui/console.css"), &cookie)
        .await
        .len();

    let first = fetch(
        &client,
        &format!("{base}/ui/products/bench/deliveries"),
        &cookie,
    )
    .await;
    let delivery = first_delivery_link(&first);
    let older = older_link(&first);
    let pages = [
        ("product", "/ui/products/bench".to_owned()),
        ("deliveries", "/ui/products/bench/deliveries".to_owned()),
        (
            "deliveries_dead",
            "/ui/products/bench/deliveries?status=dead&since=6h".to_owned(),
        ),
        (
            "deliveries_page_2",
            format!("/ui/products/bench/deliveries{older}"),
        ),
        ("delivery", delivery),
        ("overview", "/ui/products/bench/overview".to_owned()),
        ("catalogue", "/ui/catalogue".to_owned()),
    ];
    let mut figures = serde_json::Map::new();
    for (name, path) in pages {
        let target = format!("{base}{path}");
        let mut times = Vec::with_capacity(PAGE_REQUESTS);
        let mut bytes = 0;
        for _ in 0..PAGE_REQUESTS {
            let started = Instant::now();
            bytes = fetch(&client, &target, &cookie).await.len();
            times.push(ms(started.elapsed()));
        }
        figures.insert(
            name.into(),
            json!({
                "p50_ms": round3(median(&times)),
                "p99_ms": round3(percentile(&times, 99.0)),
                "bytes": bytes,
                "bytes_with_assets": bytes + stylesheet,
            }),
        );
    }
    let _ = stop.send(());
    serving.await.expect("serve task").expect("serve");
    Value::Object(figures)
}

/// A session cookie, through a link as `make demo` prints it.
async fn sign_in(client: &reqwest::Client, store: &dyn Store, base: &str) -> String {
    let hour = Duration::from_secs(3600);
    let made = console::create_link(store, TOKEN, base, &Scope::Admin, (hour, hour)).await;
    let (_, link) = made.expect("a link");
    let answer = client.get(link).send().await.expect("sign in");
    let cookie = answer
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    cookie.split(';').next().unwrap_or_default().to_owned()
}

async fn fetch(client: &reqwest::Client, url: &str, cookie: &str) -> String {
    let answer = client
        .get(url)
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(
        answer.status().is_success(),
        "GET {url}: {}",
        answer.status()
    );
    answer.text().await.expect("page")
}

fn first_delivery_link(page: &str) -> String {
    let start = page
        .find("href=\"/ui/products/bench/deliveries/msg_")
        .expect("a delivery in the list")
        + "href=\"".len();
    let end = page[start..].find('"').expect("link end") + start;
    page[start..end].to_owned()
}

fn older_link(page: &str) -> String {
    let start = page.find("id=\"older\" href=\"").expect("a second page") + 17;
    let end = page[start..].find('"').expect("link end") + start;
    page[start..end].replace("&amp;", "&")
}

/// SQL making `n` deliveries of product `bench` (ten per event), one attempt each,
/// evenly over the day before `now`, with the columns the stores write (an attempt's
/// product and minute too). The same shape for both databases.
fn rows_sql(n: usize, now: i64, series: &str, id: &str, event: &str) -> String {
    let step = DAY_MS / n.max(1) as i64;
    let t = format!("({now} - ({n} - i) * {step})");
    let status =
        "CASE WHEN i % 20 = 0 THEN 'dead' WHEN i % 20 = 1 THEN 'failed' ELSE 'delivered' END";
    let payload = common::body(&common::event());
    let payload = String::from_utf8_lossy(&payload).replace('\'', "''");
    format!(
        "INSERT INTO events (id, product_id, payload, received_at)
           SELECT {event}, 'bench', '{payload}', {t} FROM {series} WHERE i % 10 = 0;
         INSERT INTO deliveries (id, event_id, product_id, instance, service, status, attempts,
                                 next_at, last_error, created_at, updated_at)
           SELECT {id}, {event}, 'bench', 'hook', 'webhook', {status}, 1,
                  CASE WHEN i % 20 = 1 THEN {now} + 3600000 END,
                  CASE WHEN i % 20 < 2 THEN 'HTTP 503 Service Unavailable' END, {t}, {t}
           FROM {series};
         INSERT INTO attempts (delivery_id, number, at, duration_ms, target, outcome, status, error,
                               product_id, minute)
           SELECT {id}, 1, {t}, 5 + (i * 7) % 300, 'http://127.0.0.1:9/[redacted]',
                  CASE WHEN i % 20 < 2 THEN 'failed' ELSE 'delivered' END,
                  CASE WHEN i % 20 < 2 THEN 503 ELSE 200 END,
                  CASE WHEN i % 20 < 2 THEN 'HTTP 503 Service Unavailable' END,
                  'bench', {t} - {t} % 60000
           FROM {series};"
    )
}

fn seed_sqlite(n: usize, now: i64) -> String {
    let series = format!(
        "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {n}) SELECT i FROM s)"
    );
    let rows = rows_sql(
        n,
        now,
        &series,
        "printf('msg_%08d', i)",
        "printf('evt_%08d', i / 10)",
    );
    format!("BEGIN; {rows} COMMIT; ANALYZE;")
}

fn seed_postgres(n: usize, now: i64) -> String {
    let series = format!("generate_series(0, {}) AS s(i)", n.saturating_sub(1));
    rows_sql(
        n,
        now,
        &series,
        "'msg_' || lpad(i::text, 8, '0')",
        "'evt_' || lpad((i / 10)::text, 8, '0')",
    )
}
