//! Messages shaped for people (docs/SHAPING.md), end to end: the real `lookout serve`, a
//! real SQLite file, real HTTP to local capture servers, and a real SIGKILL in the middle
//! of a window.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::serving::{Place, Serving, wait_until};
use lookout_testkit::{CaptureServer, Captured};
use serde_json::{Value, json};

const TOKEN: &str = "shaping-test-token-5c1d9e0b7a3f2468";
/// In every target URL: a secret path that must never be printed.
const URL_KEY: &str = "SH4PExSECRETx7";

fn place() -> Place {
    let config = "[engine]\nrequest_timeout = \"5s\"\ndeadline = \"6s\"\n\
                  allow_networks = [\"127.0.0.0/8\"]\n";
    Place::new(TOKEN, config).never_printing(&[URL_KEY, TOKEN])
}

fn client() -> reqwest::Client {
    common::api_client(Duration::from_secs(10))
}

/// Replaces product `p1`'s services through the API; the answer's status and body.
async fn put_services(serving: &Serving, services: Value) -> (u16, Value) {
    let answer = client()
        .put(format!("{}/v1/products/p1", serving.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(json!({ "services": services }).to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, json_of(answer).await)
}

/// A webhook to `target` at `/{path}/URL_KEY` that coalesces updates of an item.
fn coalescing_hook(target: &CaptureServer, path: &str, window: &str) -> Value {
    json!({
        "service": "webhook",
        "urls": [format!("{}/{path}/{URL_KEY}", target.url())],
        "events": ["Item.*"],
        "coalesce": {"by": "attributes.number", "window": window, "max_wait": "1m"},
    })
}

/// The item sample as update `title` of item `number`.
fn item_update(number: u64, title: &str) -> String {
    let mut event: Value = serde_json::from_str(lookout::samples::ALL[0].1).unwrap();
    event["action"] = json!("updated");
    event["attributes"]["number"] = json!(number);
    event["attributes"]["title"] = json!(title);
    event.to_string()
}

/// Posts `payload` for `p1`; the event's id and its first delivery's.
async fn post(serving: &Serving, payload: String) -> (String, String) {
    let answer = client()
        .post(format!("{}/v1/products/p1/events", serving.url))
        .bearer_auth(TOKEN)
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let body = json_of(answer).await;
    let event = body["id"].as_str().unwrap().to_owned();
    let delivery = body["deliveries"][0]["id"].as_str().unwrap().to_owned();
    (event, delivery)
}

async fn json_of(answer: reqwest::Response) -> Value {
    serde_json::from_str(&answer.text().await.unwrap()).unwrap_or_default()
}

fn title_of(request: &Captured) -> String {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
    body["attributes"]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Every delivery, by id, as `lookout deliveries list --json` shows it.
fn deliveries(place: &Place) -> BTreeMap<String, Value> {
    let listed = place.cli_json(&["deliveries", "list"]);
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), d.clone()))
        .collect()
}

fn count_with(rows: &BTreeMap<String, Value>, status: &str) -> usize {
    rows.values().filter(|d| d["status"] == status).count()
}

/// Six updates of one item within the window: one request, the newest; the five
/// others `superseded`, each linked to the one that replaced it, in the CLI, the API
/// and the console. Another item's update goes alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_updates_within_the_window_send_only_the_newest() {
    let target = CaptureServer::start();
    let place = place();
    let serving = place.serve(&[]);
    let hook = coalescing_hook(&target, "board", "2s");
    assert_eq!(
        put_services(&serving, json!({ "board": hook })).await.0,
        200
    );
    let mut ids = Vec::new();
    for n in 1..=6 {
        ids.push(
            post(&serving, item_update(5, &format!("update {n}")))
                .await
                .1,
        );
    }
    post(&serving, item_update(6, "the other item")).await;
    let arrived = target.wait_for(2, Duration::from_secs(15));
    wait_until(Duration::from_secs(10), "every delivery finished", || {
        let rows = deliveries(&place);
        count_with(&rows, "delivered") == 2 && count_with(&rows, "superseded") == 5
    });
    let mut titles: Vec<String> = arrived.iter().map(title_of).collect();
    titles.sort();
    assert_eq!(titles, ["the other item", "update 6"]);
    assert_eq!(target.requests().len(), 2, "nothing else was sent");

    let rows = deliveries(&place);
    for pair in ids.windows(2) {
        let older = &rows[&pair[0]];
        assert_eq!(older["status"], "superseded", "{older}");
        assert_eq!(
            older["replaced_by"],
            pair[1].as_str(),
            "linked to its replacement"
        );
        assert_eq!(older["attempts"], 0, "never attempted");
    }
    let newest = &ids[5];
    let shown = place.cli(&["deliveries", "show", &ids[0]]);
    assert!(shown.contains(&format!("replaced {}", ids[1])), "{shown}");
    let shown = place.cli(&["deliveries", "show", newest]);
    assert!(shown.contains("replaces 1 older delivery"), "{shown}");
    assert!(shown.contains(&ids[4]), "{shown}");

    let detail = client()
        .get(format!("{}/v1/deliveries/{}", serving.url, ids[4]))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let detail = json_of(detail).await;
    assert_eq!(detail["delivery"]["status"], "superseded");
    assert_eq!(detail["delivery"]["replaced_by"], newest.as_str());
    let detail = client()
        .get(format!("{}/v1/deliveries/{newest}", serving.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let detail = json_of(detail).await;
    assert_eq!(detail["replaces"][0]["id"], ids[4].as_str(), "{detail}");
}

/// Whether every event's delivery is accounted for exactly once: sent (delivered), still
/// to be sent (pending), or superseded by a delivery that is itself accounted for. A
/// superseded delivery whose chain ends nowhere, or in a delivery that is neither, is
/// an event lost.
fn each_event_once(rows: &BTreeMap<String, Value>) -> Result<(), String> {
    for id in rows.keys() {
        let mut at = id.clone();
        let mut seen = BTreeSet::new();
        loop {
            let Some(current) = rows.get(&at) else {
                return Err(format!("{id}: replaced by {at}, which does not exist"));
            };
            match current["status"].as_str() {
                Some("delivered" | "pending") => break,
                Some("superseded") => {
                    let next = current["replaced_by"].as_str().unwrap_or_default();
                    if !seen.insert(next.to_owned()) {
                        return Err(format!("{id}: a loop of replacements"));
                    }
                    at = next.to_owned();
                }
                other => return Err(format!("{id}: ends {other:?} at {at}")),
            }
        }
    }
    Ok(())
}

/// A SIGKILL in the middle of a window loses nothing and sends nothing twice: right
/// after the kill, every event is pending or superseded by a pending delivery; after
/// a restart, each item's newest update is sent once, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_window_leaves_every_event_sent_once_or_pending() {
    let target = CaptureServer::start();
    let place = place();
    let mut serving = place.serve(&[]);
    let hook = coalescing_hook(&target, "board", "6s");
    assert_eq!(
        put_services(&serving, json!({ "board": hook })).await.0,
        200
    );
    for round in 1..=3 {
        for item in [7, 8] {
            post(
                &serving,
                item_update(item, &format!("item {item} update {round}")),
            )
            .await;
        }
    }
    serving.kill();
    let rows = deliveries(&place);
    assert_eq!(rows.len(), 6);
    assert_eq!(
        count_with(&rows, "pending"),
        2,
        "one per item, in its window"
    );
    assert_eq!(count_with(&rows, "superseded"), 4);
    each_event_once(&rows).unwrap();
    assert!(
        target.requests().is_empty(),
        "killed before any window ended"
    );

    // Restarted: one more update of item 7 arrives within its window and replaces it.
    let serving = place.serve(&[]);
    post(&serving, item_update(7, "item 7 update 4")).await;
    let arrived = target.wait_for(2, Duration::from_secs(20));
    wait_until(Duration::from_secs(10), "both items sent", || {
        count_with(&deliveries(&place), "delivered") == 2
    });
    let rows = deliveries(&place);
    each_event_once(&rows).unwrap();
    assert_eq!(count_with(&rows, "superseded"), 5);
    let mut titles: Vec<String> = arrived.iter().map(title_of).collect();
    titles.sort();
    assert_eq!(titles, ["item 7 update 4", "item 8 update 3"]);
    assert_eq!(target.requests().len(), 2, "nothing sent twice");
}

/// A shaping table with a typo, a window out of range or both shapes is refused where
/// it is read, naming its table and key: by `lookout validate` and by the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_shaping_tables_are_refused_naming_what_is_wrong() {
    let place = place();
    let config = "[services.board]\nservice = \"webhook\"\nurls = [\"http://127.0.0.1:9/x\"]\n\
                  coalesce = { by = \"attribute.number\", window = \"2h\", wait = \"1m\" }\n\
                  [services.daily]\nservice = \"webhook\"\nurls = [\"http://127.0.0.1:9/y\"]\n\
                  digest = { window = \"0s\", max_events = 5000 }\n";
    let file = place.dir.path().join("shaping.toml");
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "[services.board] coalesce.by: `attribute.number` must start with one of",
        "[services.board] coalesce.window: 2h is out of range: from 1s to 1h",
        "[services.board] coalesce.wait: unknown key",
        "[services.daily] digest.window: 0s is out of range",
        "[services.daily] digest.max_events: 5000 is out of range",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }

    let serving = place.serve(&[]);
    let (status, body) = put_services(
        &serving,
        json!({"board": {"service": "webhook", "urls": ["http://127.0.0.1:9/x"],
                         "coalesce": {"by": "attributes.number", "window": "30s",
                                      "max_wait": "5s"},
                         "digest": {"window": "1m"}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let problems = body["problems"].to_string();
    assert!(
        problems.contains("[services.board] coalesce.max_wait: 5s is out of range: from 30s"),
        "{problems}"
    );
    assert!(
        problems.contains("[services.board] digest: a service either coalesces or sends digests"),
        "{problems}"
    );
}

const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Five events within a digest window: one Slack message naming all five, one email
/// naming all five, and one webhook request whose body is the array of the five
/// payloads, signed as one message (the official Standard Webhooks library verifies
/// it). Each event's own delivery ends `digested`, linked to its digest, which lists
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_events_in_a_window_make_one_message_per_service() {
    let target = CaptureServer::start();
    let sink = common::smtp_sink::Sink::start(&["plain"]);
    let place = place();
    let serving = place.serve(&[]);
    let digest = json!({"window": "2s", "max_events": 50});
    let services = json!({
        "chat": {"service": "slack", "events": ["Item.*"], "digest": digest,
                 "url": format!("{}/slack/{URL_KEY}", target.url())},
        "mail": {"service": "email", "events": ["Item.*"], "digest": digest,
                 "host": "localhost", "port": sink.port, "security": "none",
                 "from": "Lookout <bot@example.com>", "to": ["team@example.com"]},
        "hook": {"service": "webhook", "events": ["Item.*"], "digest": digest,
                 "urls": [format!("{}/hook/{URL_KEY}", target.url())],
                 "secret": SIGNING_SECRET},
    });
    let (status, body) = put_services(&serving, services).await;
    assert_eq!(status, 200, "{body}");
    let titles: Vec<String> = (1..=5).map(|n| format!("Digest story {n}")).collect();
    let mut events = Vec::new();
    for (n, title) in titles.iter().enumerate() {
        events.push(post(&serving, item_update(40 + n as u64, title)).await.0);
    }
    let arrived = target.wait_for(2, Duration::from_secs(15));
    let mail = sink.next_message();

    let slack = arrived
        .iter()
        .find(|r| r.path.starts_with("/slack"))
        .unwrap();
    let text = serde_json::from_slice::<Value>(&slack.body).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.starts_with("5 events in "), "{text}");
    let subject = mail["headers"]["subject"].as_str().unwrap();
    assert!(subject.contains("5 events in "), "{subject}");
    let mail_text = mail["text"].as_str().unwrap();
    for title in &titles {
        assert!(
            text.contains(title.as_str()),
            "{title} not in the Slack message: {text}"
        );
        assert!(
            mail_text.contains(title.as_str()),
            "{title} not in the email: {mail_text}"
        );
    }

    let hook = arrived
        .iter()
        .find(|r| r.path.starts_with("/hook"))
        .unwrap();
    let array: Vec<Value> = serde_json::from_slice(&hook.body).unwrap();
    let sent: Vec<&str> = array
        .iter()
        .map(|e| e["attributes"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(sent, titles, "every payload, oldest first");
    verified_by_the_official_library(hook);

    wait_until(Duration::from_secs(10), "three digests delivered", || {
        let rows = deliveries(&place);
        count_with(&rows, "delivered") == 3 && count_with(&rows, "digested") == 15
    });
    assert_eq!(target.requests().len(), 2, "nothing else was sent");
    let rows = deliveries(&place);
    let digest_id = rows
        .values()
        .find(|d| d["instance"] == "hook" && d["status"] == "delivered")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(hook.header("webhook-id"), Some(digest_id.as_str()));
    assert_eq!(rows[&digest_id]["digest_events"], 5);
    let shown = place.cli(&["deliveries", "show", &digest_id]);
    assert!(shown.contains("digest   of 5 event(s)"), "{shown}");
    for event in &events {
        assert!(
            shown.contains(event.as_str()),
            "{event} not listed: {shown}"
        );
    }
}

/// `GET {path}` of the API: its text, after checking that no secret is in it, not even
/// in part.
async fn get_text(serving: &Serving, path: &str) -> String {
    let answer = client()
        .get(format!("{}{path}", serving.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    assert_no_secret_even_in_part(&text);
    text
}

fn assert_no_secret_even_in_part(text: &str) {
    for secret in [URL_KEY, SIGNING_SECRET] {
        let (head, tail) = secret.split_at(secret.len() / 2);
        for part in [secret, head, tail] {
            assert!(!text.contains(part), "`{part}` of a secret in:\n{text}");
        }
    }
}

/// Every delivery setting written to `PUT /v1/products/p1` comes back from `GET`, from
/// `products show` and its `--json` as it was written; `GET`'s answer written back as
/// it is, is accepted and changes nothing (the deliveries still go where they went,
/// signed with the stored secret); no secret is ever shown, not even in part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_settings_come_back_as_written_and_write_back_unchanged() {
    let target = CaptureServer::start();
    let place = place();
    let serving = place.serve(&[]);
    let hook = |path: &str| format!("{}/{path}/{URL_KEY}", target.url());
    let services = json!({
        "board": {"service": "webhook", "urls": [hook("board")], "secret": SIGNING_SECRET,
                  "events": ["Item.*"], "fallback": "daily", "order_by": "attributes.number",
                  "concurrency": 2,
                  "coalesce": {"by": "attributes.number", "window": "1s", "max_wait": "30s"}},
        "daily": {"service": "webhook", "urls": [hook("daily")], "secret": SIGNING_SECRET,
                  "events": ["Item.*"], "digest": {"window": "1s", "max_events": 20}},
        "spare": {"service": "webhook", "urls": [hook("spare")], "secret": SIGNING_SECRET,
                  "enabled": false},
    });
    let (status, saved) = put_services(&serving, services.clone()).await;
    assert_eq!(status, 200, "{saved}");
    assert_no_secret_even_in_part(&saved.to_string());
    let shown: Value = serde_json::from_str(&get_text(&serving, "/v1/products/p1").await).unwrap();
    assert_eq!(shown, saved, "PUT answers the product as GET shows it");
    let settings = [
        ("board", "events"),
        ("board", "fallback"),
        ("board", "order_by"),
        ("board", "concurrency"),
        ("board", "coalesce"),
        ("daily", "events"),
        ("daily", "digest"),
    ];
    for (name, key) in settings {
        assert_eq!(
            shown["services"][name][key], services[name][key],
            "{name}.{key}"
        );
    }
    assert_eq!(shown["services"]["board"]["secret"], "[redacted]");
    // Stored switched off, shown so, and kept so by the round trip below.
    assert_eq!(shown["services"]["spare"]["enabled"], false, "{shown}");
    assert_eq!(shown["services"]["spare"]["secret"], "[redacted]");
    let listed: Value = serde_json::from_str(&get_text(&serving, "/v1/products").await).unwrap();
    assert_eq!(listed, json!([shown]));

    // The answer written back as it is: accepted, and the same product.
    let answer = client()
        .put(format!("{}/v1/products/p1", serving.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(shown.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(json_of(answer).await, shown);
    assert_eq!(
        serde_json::from_str::<Value>(&get_text(&serving, "/v1/products/p1").await).unwrap(),
        shown
    );

    // A secret shown redacted is not kept for a destination that changed, nor is
    // another product's answer taken for this one.
    let mut moved = shown.clone();
    moved["services"]["board"]["urls"] = json!([hook("elsewhere")]);
    let (status, refused) = put_services(&serving, moved["services"].clone()).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["problems"],
        json!([
            "[services.board] secret: `urls` changed: write this value out again \
             (a stored secret is only sent where it was entered)"
        ])
    );
    let mut other = shown.clone();
    other["id"] = json!("p2");
    let answer = client()
        .put(format!("{}/v1/products/p1", serving.url))
        .bearer_auth(TOKEN)
        .body(other.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let refused = json_of(answer).await;
    assert_eq!(refused["error"], "id: not the product in the path, `p1`");

    // The same on the command line, in both its forms.
    assert_eq!(place.cli_json(&["products", "show", "p1"]), shown);
    let table = place.cli(&["products", "show", "p1"]);
    assert_no_secret_even_in_part(&table);
    for written in [
        r#""fallback":"daily""#,
        r#""order_by":"attributes.number""#,
        r#""concurrency":2"#,
        r#""coalesce":{"#,
        r#""max_wait":"30s""#,
        r#""digest":{"#,
        r#""max_events":20"#,
    ] {
        assert!(table.contains(written), "no {written} in:\n{table}");
    }

    // Nothing changed: both still send to their stored URLs, signed with the stored
    // secret (the official library verifies it).
    post(&serving, item_update(7, "Round trip")).await;
    let arrived = target.wait_for(2, Duration::from_secs(15));
    for name in ["board", "daily"] {
        let request = arrived
            .iter()
            .find(|r| r.path == format!("/{name}/{URL_KEY}"))
            .unwrap_or_else(|| panic!("nothing sent to {name}"));
        verified_by_the_official_library(request);
    }
}

/// Runs the official Standard Webhooks library (tests/verify_standard_webhooks.py) on
/// one captured request.
fn verified_by_the_official_library(request: &Captured) {
    use std::io::Write as _;
    let headers: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let input = json!({"secret": SIGNING_SECRET,
                       "requests": [{"headers": headers, "body": request.text()}]});
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_standard_webhooks.py");
    let mut child = std::process::Command::new(common::smtp_sink::venv().join("bin/python"))
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the verify script (make test-deps installs standardwebhooks)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `lookout replay` shows what a config that coalesces or sends digests would have sent
/// for the stored history: "8 events → 3 digests".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_tells_what_coalescing_and_digests_would_have_sent() {
    let target = CaptureServer::start();
    let place = place();
    let mut serving = place.serve(&[]);
    let plain = json!({"service": "webhook", "events": ["Item.*"],
                       "urls": [format!("{}/board/{URL_KEY}", target.url())]});
    assert_eq!(
        put_services(&serving, json!({ "board": plain })).await.0,
        200
    );
    for n in 1..=6 {
        post(&serving, item_update(9, &format!("item 9 update {n}"))).await;
    }
    for n in 1..=2 {
        post(&serving, item_update(10, &format!("item 10 update {n}"))).await;
    }
    target.wait_for(8, Duration::from_secs(15));
    assert!(serving.terminate().success());

    let url = format!("{}/board/{URL_KEY}", target.url());
    let config = format!(
        "[engine]\nallow_networks = [\"127.0.0.0/8\"]\n\
         [services.board]\nservice = \"webhook\"\nurls = [\"{url}\"]\nevents = [\"Item.*\"]\n\
         digest = {{ window = \"1h\", max_events = 3 }}\n\
         [services.items]\nservice = \"webhook\"\nurls = [\"{url}\"]\nevents = [\"Item.*\"]\n\
         coalesce = {{ by = \"attributes.number\", window = \"1h\", max_wait = \"2h\" }}\n"
    );
    let file = place.dir.path().join("shaped.toml");
    std::fs::write(&file, config).unwrap();
    let file = file.to_str().unwrap();
    let args = [
        "replay",
        "--config",
        file,
        "--since",
        "1h",
        "--product",
        "p1",
    ];
    let printed = place.cli(&args);
    assert!(
        printed.contains("board (digest): 8 events → 3 digests"),
        "{printed}"
    );
    assert!(
        printed.contains("items (coalesce): 8 events → 2 deliveries (6 superseded)"),
        "{printed}"
    );
    let json = place.cli_json(&args);
    assert_eq!(json["shaped"][0]["messages"], 3, "{json}");
    assert_eq!(json["shaped"][1]["events"], 8, "{json}");
}
