//! One tenant never slows another (docs/SERVING.md, "Fairness and lanes"), end to end:
//! the real `lookout serve` on a SQLite file, real HTTP to local capture servers. Product
//! `pa` bursts to a paced or a slow destination, or has its services changed over and
//! over, while product `pb`'s events are timed from their POST to their arrival.

mod common;

use std::time::{Duration, Instant};

use common::keeps_pace;
use common::serving::{Place, Serving, wait_until};
use futures::StreamExt as _;
use lookout_testkit::{CaptureServer, Reply};
use serde_json::{Value, json};

const TOKEN: &str = "fairness-token-0123456789abcdef";
/// In the Slack hook's URL: a key that must never be printed.
const URL_KEY: &str = "XOXB9SECRETx42";

/// Loopback allowed, short timeouts (the targets are local), a short retry schedule.
fn place() -> Place {
    place_retrying_after("1s")
}

/// [`place`] whose deliveries are retried after `delay`.
fn place_retrying_after(delay: &str) -> Place {
    let config = format!(
        "[engine]\nrequest_timeout = \"5s\"\ndeadline = \"6s\"\n\
         allow_networks = [\"127.0.0.0/8\"]\n\
         [worker]\nretry_schedule = [\"{delay}\", \"{delay}\"]\nretry_jitter = 0.0\n"
    );
    Place::new(TOKEN, &config).never_printing(&[URL_KEY, TOKEN])
}

/// Gives `product` one service of kind `service` (named `chat` or `hook`) with the
/// `--set` options `options`.
fn add_service(place: &Place, product: &str, service: &str, options: &[&str]) {
    let name = if service == "slack" { "chat" } else { "hook" };
    let mut args = vec!["products", "add", product, name, "--service", service];
    for option in options {
        args.extend(["--set", option]);
    }
    place.cli(&args);
}

fn client() -> reqwest::Client {
    common::api_client(Duration::from_secs(20))
}

/// The item sample with `number` and a title naming it, to tell events apart.
fn numbered(number: u64) -> String {
    let mut event: Value = serde_json::from_str(lookout::samples::ALL[0].1).unwrap();
    event["attributes"]["number"] = Value::from(number);
    event["attributes"]["title"] = Value::from(format!("event #{number}"));
    event.to_string()
}

fn number_of(body: &[u8]) -> u64 {
    let json: Value = serde_json::from_slice(body).expect("a JSON body");
    json["attributes"]["number"]
        .as_u64()
        .expect("a numbered event")
}

/// POSTs an event of `product`; its status.
async fn post(http: &reqwest::Client, serving: &Serving, product: &str, body: String) -> u16 {
    http.post(format!("{}/v1/products/{product}/events", serving.url))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// POSTs an event of `pa`, which must be accepted; the id of its one delivery.
async fn post_for_id(http: &reqwest::Client, serving: &Serving, body: String) -> String {
    let answer = http
        .post(format!("{}/v1/products/pa/events", serving.url))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let body: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    body["deliveries"][0]["id"].as_str().unwrap().to_owned()
}

/// Posts `count` events of `pb` one at a time, each when the one before arrived at
/// `sink`; the time from each POST to its arrival.
async fn probe(
    http: &reqwest::Client,
    serving: &Serving,
    sink: &CaptureServer,
    count: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        let status = post(http, serving, "pb", numbered(n as u64)).await;
        assert_eq!(status, 202);
        let arrived = tokio::task::block_in_place(|| sink.wait_for(n + 1, Duration::from_secs(30)));
        assert!(
            arrived.len() > n,
            "probe {n} of pb did not arrive within 30 s"
        );
        latencies.push(arrived[n].at.saturating_duration_since(started));
    }
    latencies
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// `pa`'s deliveries, each as the API shows it.
async fn deliveries_of(http: &reqwest::Client, serving: &Serving, product: &str) -> Vec<Value> {
    let listed: Value = http
        .get(format!(
            "{}/v1/deliveries?product={product}&limit=1000",
            serving.url
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| serde_json::from_str(&text).expect("JSON"))
        .unwrap();
    listed.as_array().cloned().unwrap_or_default()
}

#[test]
fn the_pace_check_can_fail() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let second = Duration::from_secs(1);
    let paced = [at(0), at(0), at(0), at(1_000), at(2_000), at(2_990)];
    assert!(keeps_pace(&paced, second, 3, Duration::from_millis(50)).is_ok());
    let twice_as_fast = [at(0), at(0), at(0), at(500), at(1_000), at(1_500)];
    assert!(keeps_pace(&twice_as_fast, second, 3, Duration::from_millis(50)).is_err());
    assert!(keeps_pace(&[at(0); 4], second, 3, Duration::from_millis(50)).is_err());
}

/// Product `pa` posts a burst to one Slack hook (a second per message, bursts of 3)
/// through workers with only 4 slots; `pb`'s webhook deliveries go on as if it were
/// idle, none of `pa`'s attempts fails for pacing, and the hook never sees more than
/// its pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_a_paced_hook_leaves_other_products_alone() {
    let slack = CaptureServer::start();
    let quiet = CaptureServer::start();
    let place = place();
    let hook = format!("url={}/services/T0/B0/{URL_KEY}", slack.url());
    add_service(&place, "pa", "slack", &[&hook]);
    add_service(
        &place,
        "pb",
        "webhook",
        &[&format!("urls={}/b", quiet.url())],
    );
    let serving = place.serve(&["--concurrency", "4"]);
    let http = client();

    let burst = 12;
    for n in 0..burst {
        assert_eq!(post(&http, &serving, "pa", numbered(1_000 + n)).await, 202);
    }
    let latencies = probe(&http, &serving, &quiet, 40).await;
    let (p50, p99) = (percentile(&latencies, 50), percentile(&latencies, 99));
    eprintln!("fairness: pb during pa's burst to a paced hook: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p99 < Duration::from_millis(250),
        "pb's p99 {p99:?}: {latencies:?}"
    );

    let arrived =
        tokio::task::block_in_place(|| slack.wait_for(burst as usize, Duration::from_secs(30)));
    assert_eq!(
        arrived.len(),
        burst as usize,
        "pa's burst did not all arrive"
    );
    let times: Vec<Instant> = arrived.iter().map(|r| r.at).collect();
    let second = Duration::from_secs(1);
    if let Err(early) = keeps_pace(&times, second, 3, Duration::from_millis(100)) {
        panic!("the hook saw more than its pace: {early}");
    }
    wait_until(Duration::from_secs(10), "pa's deliveries recorded", || {
        let deliveries = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(deliveries_of(&http, &serving, "pa"))
        });
        deliveries.len() == burst as usize && deliveries.iter().all(|d| d["status"] == "delivered")
    });
    for delivery in deliveries_of(&http, &serving, "pa").await {
        assert_eq!(
            delivery["attempts"], 1,
            "waiting for a slot is no attempt: {delivery}"
        );
    }
}

/// Product `pa` posts a burst to a webhook that takes 3 s to answer; `pb`'s deliveries
/// do not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_a_slow_target_leaves_other_products_alone() {
    let slow = CaptureServer::start();
    slow.script("/slow", [Reply::ok().delay(Duration::from_secs(3))]);
    let quiet = CaptureServer::start();
    let place = place();
    let urls = format!("urls={}/slow", slow.url());
    add_service(&place, "pa", "webhook", &[&urls]);
    add_service(
        &place,
        "pb",
        "webhook",
        &[&format!("urls={}/b", quiet.url())],
    );
    let serving = place.serve(&[]);
    let http = client();

    for n in 0..64 {
        assert_eq!(post(&http, &serving, "pa", numbered(n)).await, 202);
    }
    let latencies = probe(&http, &serving, &quiet, 40).await;
    let (p50, p99) = (percentile(&latencies, 50), percentile(&latencies, 99));
    eprintln!("fairness: pb during pa's burst to a 3 s target: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p99 < Duration::from_millis(250),
        "pb's p99 {p99:?}: {latencies:?}"
    );
    let held = slow.count();
    assert!(
        held <= 8,
        "the slow target holds at most its lane's cap: {held} requests"
    );
}

/// With `order_by`, a failed first attempt of key 1's first event holds key 1's later
/// events until it is delivered; key 2's go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_delivery_holds_back_only_its_own_key() {
    let sink = CaptureServer::start();
    sink.script("/ordered", [Reply::status(503), Reply::ok()]);
    // Long enough to see the later ones held while the first waits for its retry.
    let place = place_retrying_after("3s");
    let urls = format!("urls={}/ordered", sink.url());
    add_service(
        &place,
        "pa",
        "webhook",
        &[&urls, "order_by=attributes.title"],
    );
    let serving = place.serve(&[]);
    let http = client();
    let keyed = |key: u64, seq: u64| {
        let mut event: Value = serde_json::from_str(&numbered(key * 100 + seq)).unwrap();
        event["attributes"]["title"] = Value::from(format!("key {key}"));
        event.to_string()
    };

    let first_id = post_for_id(&http, &serving, keyed(1, 1)).await;
    let first = tokio::task::block_in_place(|| sink.wait_for(1, Duration::from_secs(10)));
    assert_eq!(
        number_of(&first[0].body),
        101,
        "key 1's first, answered 503"
    );
    let mut ids = Vec::new();
    for (key, seq) in [(1, 2), (2, 1), (1, 3), (2, 2)] {
        ids.push(post_for_id(&http, &serving, keyed(key, seq)).await);
    }
    // Key 1's second says why it waits, and for which.
    let shown = http
        .get(format!("{}/v1/deliveries/{}", serving.url, ids[0]))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let shown: Value = serde_json::from_str(&shown.text().await.unwrap()).unwrap();
    assert_eq!(shown["waiting"]["state"], "held", "{shown}");
    assert_eq!(shown["waiting"]["behind"], first_id.as_str(), "{shown}");
    let all = tokio::task::block_in_place(|| sink.wait_for(6, Duration::from_secs(20)));
    let order: Vec<u64> = all.iter().map(|r| number_of(&r.body)).collect();
    assert_eq!(order.len(), 6, "{order:?}");
    let key_1: Vec<u64> = order.iter().copied().filter(|n| n / 100 == 1).collect();
    assert_eq!(
        key_1,
        [101, 101, 102, 103],
        "key 1 in intake order, after its retry"
    );
    let retried = order.iter().rposition(|n| *n == 101).unwrap();
    let key_2: Vec<usize> = (0..order.len()).filter(|i| order[*i] / 100 == 2).collect();
    assert_eq!(key_2.len(), 2);
    assert!(
        key_2.iter().all(|i| *i < retried),
        "key 2 went on while key 1 waited for its retry: {order:?}"
    );
}

/// One product's services saved over and over: another product's events are all taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_one_product_never_turn_away_another_products_events() {
    let sink = CaptureServer::start();
    let place = place();
    for product in ["pa", "pb"] {
        let urls = format!("urls={}/{product}", sink.url());
        add_service(&place, product, "webhook", &[&urls]);
    }
    let serving = place.serve(&[]);
    let http = client();
    let url = serving.url.clone();
    let (changer, sink_url) = (http.clone(), sink.url());
    let changes = tokio::spawn(async move {
        let mut statuses = Vec::new();
        let started = Instant::now();
        for n in 0..400 {
            if started.elapsed() > Duration::from_secs(20) {
                break;
            }
            let body = json!({"services": {"hook": {
                "service": "webhook", "urls": [format!("{sink_url}/pa/{}", n % 2)],
            }}});
            let response = changer
                .put(format!("{url}/v1/products/pa"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        statuses
    });
    let posts = 400;
    let statuses: Vec<u16> = futures::stream::iter(0..posts)
        .map(|n| post(&http, &serving, "pb", numbered(n)))
        .buffer_unordered(16)
        .collect()
        .await;
    let refused: Vec<&u16> = statuses.iter().filter(|s| **s != 202).collect();
    let changed = changes.await.unwrap();
    assert!(changed.iter().all(|s| *s == 200), "{changed:?}");
    eprintln!(
        "fairness: {posts} events of pb while pa was saved {} times",
        changed.len()
    );
    assert!(refused.is_empty(), "pb's events refused: {refused:?}");
}
