//! Fallback routes end to end (docs/SHAPING.md, "Fallback routes"): the real `lookout
//! serve`, a SQLite file, real HTTP to local capture servers standing for a chat that is
//! gone and the mail that should get its events instead.

mod common;

use std::process::Command;
use std::time::Duration;

use common::serving::{Place, Serving, wait_until};
use lookout_testkit::{CaptureServer, Reply};
use serde_json::{Value, json};

const TOKEN: &str = "fallback-test-token-5c1d9e07a3b24f86";
/// In every target URL: a secret path that must never be printed.
const URL_KEY: &str = "F4LLxSECRETx7";
const WAIT: Duration = Duration::from_secs(20);

/// Loopback allowed, short timeouts, a quick retry schedule, and `more` worker settings.
fn engine_toml(more: &str) -> String {
    format!(
        "[engine]\nrequest_timeout = \"5s\"\ndeadline = \"6s\"\n\
         allow_networks = [\"127.0.0.0/8\"]\n\
         [worker]\nretry_schedule = [\"50ms\", \"50ms\"]\nretry_jitter = 0.0\n{more}"
    )
}

fn place(more: &str) -> Place {
    Place::new(TOKEN, &engine_toml(more)).never_printing(&[URL_KEY, TOKEN])
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A webhook service sending to `/{path}/URL_KEY` of `target`, with `more` options.
fn webhook(target: &CaptureServer, path: &str, more: Value) -> Value {
    let mut table = json!({
        "service": "webhook",
        "urls": [format!("{}/{path}/{URL_KEY}", target.url())],
    });
    table
        .as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    table
}

/// `PUT /v1/products/p1` with `services`: the status and the answer.
async fn put_services(serving: &Serving, services: Value) -> (u16, Value) {
    let answer = client()
        .put(format!("{}/v1/products/p1", serving.url))
        .bearer_auth(TOKEN)
        .body(json!({ "services": services }).to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Posts the sample item with `title`; it must be accepted.
async fn post_item(serving: &Serving, title: &str) {
    let mut event: Value = serde_json::from_str(lookout::samples::ALL[0].1).unwrap();
    event["attributes"]["title"] = Value::from(title);
    let answer = client()
        .post(format!("{}/v1/products/p1/events", serving.url))
        .bearer_auth(TOKEN)
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
}

/// Every delivery, as `lookout deliveries list --json` shows them.
fn deliveries(place: &Place) -> Vec<Value> {
    let listed = place.cli_json(&["deliveries", "list"]);
    listed.as_array().cloned().unwrap_or_default()
}

/// The deliveries of service `instance` in state `status`.
fn of(place: &Place, instance: &str, status: &str) -> Vec<Value> {
    deliveries(place)
        .into_iter()
        .filter(|d| d["instance"] == instance && d["status"] == status)
        .collect()
}

/// The titles of the items `path` of `target` received.
fn titles(target: &CaptureServer, path: &str) -> Vec<String> {
    let mut titles: Vec<String> = target
        .requests_to(&format!("/{path}/"))
        .iter()
        .map(|r| {
            r.json()["attributes"]["title"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    titles.sort();
    titles
}

/// A chat that fails until its delivery is dead: its event reaches the mail once,
/// linked both ways in the CLI, `--json` and the API; a redelivery that dies again
/// does not send it twice; and the mail's own failure goes no further (one hop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_deliverys_event_reaches_the_fallback_once() {
    let target = CaptureServer::start();
    target.script("/chat/", [Reply::status(500).body("down")]);
    let place = place("");
    let serving = place.serve(&[]);
    let services = json!({
        "chat": webhook(&target, "chat", json!({"fallback": "mail"})),
        "mail": webhook(&target, "mail", json!({"events": [], "fallback": "pager"})),
        "pager": webhook(&target, "pager", json!({"events": []})),
    });
    assert_eq!(put_services(&serving, services).await.0, 200);

    post_item(&serving, "first").await;
    wait_until(WAIT, "the mail delivered", || {
        of(&place, "mail", "delivered").len() == 1
    });
    assert_eq!(
        titles(&target, "chat"),
        ["first"; 3],
        "three tries, then dead"
    );
    assert_eq!(
        titles(&target, "mail"),
        ["first"],
        "events = [] got it as a fallback"
    );
    let dead = of(&place, "chat", "dead").remove(0);
    let fallback = of(&place, "mail", "delivered").remove(0);
    assert_eq!(dead["fell_back_to"]["delivery"], fallback["id"]);
    assert_eq!(dead["fell_back_to"]["instance"], "mail");
    assert_eq!(fallback["fallback_for"]["delivery"], dead["id"]);
    assert_eq!(fallback["fallback_for"]["instance"], "chat");
    let (dead_id, fallback_id) = (
        dead["id"].as_str().unwrap(),
        fallback["id"].as_str().unwrap(),
    );
    let shown = place.cli(&["deliveries", "show", dead_id]);
    assert!(
        shown.contains(&format!("fell back to mail ({fallback_id})")),
        "{shown}"
    );
    let shown = place.cli(&["deliveries", "show", fallback_id]);
    assert!(
        shown.contains(&format!("fallback for chat ({dead_id})")),
        "{shown}"
    );
    let listed = place.cli(&["deliveries", "list"]);
    assert!(listed.contains("FALLBACK"), "{listed}");
    let api = client()
        .get(format!("{}/v1/deliveries/{fallback_id}", serving.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let api: Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["delivery"]["fallback_for"]["delivery"], dead["id"]);

    // Redelivered, it dies again: its event went to the mail already.
    place.cli(&["redeliver", dead_id]);
    wait_until(WAIT, "the chat dead again", || {
        deliveries(&place)
            .iter()
            .any(|d| d["id"] == dead["id"] && d["status"] == "dead" && d["attempts"] == 6)
    });
    assert_eq!(titles(&target, "mail"), ["first"], "still once");

    // One hop: the mail failing too, its fallback delivery goes dead and no further.
    target.script("/mail/", [Reply::status(500).body("down too")]);
    post_item(&serving, "second").await;
    wait_until(WAIT, "the second fallback dead", || {
        of(&place, "mail", "dead").len() == 1
    });
    assert_eq!(of(&place, "chat", "dead").len(), 2);
    let second = of(&place, "mail", "dead").remove(0);
    assert!(second["fell_back_to"].is_null(), "{second}");
    assert!(target.requests_to("/pager/").is_empty(), "one hop only");
    assert!(of(&place, "pager", "pending").is_empty());
}

/// A target disabled by its failures: the delivery that was retrying and every later
/// event's go to the fallback; the fallback gets nothing else (`events = []`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_targets_events_go_to_the_fallback() {
    let target = CaptureServer::start();
    target.script("/chat/", [Reply::status(503).body("down")]);
    target.script("/gone/", [Reply::status(410).body("gone")]);
    let place = place("disable_after = { failures = 2, over = \"0s\" }\n");
    let serving = place.serve(&[]);
    let services = json!({
        "chat": webhook(&target, "chat", json!({"fallback": "mail"})),
        "old": webhook(&target, "gone", json!({"fallback": "mail"})),
        "mail": webhook(&target, "mail", json!({"events": []})),
    });
    assert_eq!(put_services(&serving, services).await.0, 200);

    post_item(&serving, "first").await;
    wait_until(WAIT, "both disabled", || {
        of(&place, "chat", "disabled").len() == 1 && of(&place, "old", "disabled").len() == 1
    });
    let shown = place.cli_json(&["products", "show", "p1"]);
    assert_eq!(shown["disabled_targets"].as_array().map(Vec::len), Some(2));
    post_item(&serving, "second").await;
    wait_until(WAIT, "four fallbacks delivered", || {
        of(&place, "mail", "delivered").len() == 4
    });
    assert_eq!(
        titles(&target, "mail"),
        ["first", "first", "second", "second"]
    );
    assert_eq!(
        titles(&target, "chat"),
        ["first", "first"],
        "none once disabled"
    );
    assert_eq!(titles(&target, "gone"), ["first"]);
    for delivery in of(&place, "mail", "delivered") {
        assert!(delivery["fallback_for"].is_object(), "{delivery}");
    }
}

/// A loop and a name the product does not have are refused at `lookout validate` and
/// at `PUT`, naming the service and the option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_and_unknown_names_are_refused_at_validate_and_put() {
    let target = CaptureServer::start();
    let place = place("");
    let file = place.dir.path().join("services.toml");
    let url = format!("{}/x", target.url());
    let config = format!(
        "{}\n[services.a]\nservice = \"webhook\"\nurls = \"{url}\"\nfallback = \"b\"\n\n\
         [services.b]\nservice = \"webhook\"\nurls = \"{url}\"\nevents = []\nfallback = \"a\"\n\n\
         [services.c]\nservice = \"webhook\"\nurls = \"{url}\"\nfallback = \"nope\"\n",
        engine_toml("")
    );
    std::fs::write(&file, &config).unwrap();
    let validate = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lookout"));
        command.arg("validate").arg("--config").arg(&file);
        command
    };
    let refused = validate().output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    for expected in [
        "[services.a] fallback: a loop: a → b → a",
        "[services.b] fallback: a loop: b → a → b",
        "[services.c] fallback: no service `nope` in this product (it has: a, b)",
    ] {
        assert!(said.contains(expected), "{expected} in:\n{said}");
    }
    let fixed = config
        .replace("fallback = \"a\"\n", "")
        .replace("\"nope\"", "\"b\"");
    std::fs::write(&file, fixed).unwrap();
    let valid = common::stdout_of(&mut validate());
    assert!(valid.contains("config is valid: 3 service(s)"), "{valid}");

    let serving = place.serve(&[]);
    let own = json!({"a": webhook(&target, "a", json!({"fallback": "a"}))});
    let (status, answer) = put_services(&serving, own).await;
    assert_eq!(status, 400);
    let text = answer.to_string();
    assert!(
        text.contains("[services.a] fallback: `a` cannot be its own fallback (a loop)"),
        "{text}"
    );
    let unknown = json!({"a": webhook(&target, "a", json!({"fallback": "mail"}))});
    let (status, answer) = put_services(&serving, unknown).await;
    assert_eq!(status, 400);
    let text = answer.to_string();
    assert!(
        text.contains("[services.a] fallback: no service `mail` in this product"),
        "{text}"
    );
    assert!(!text.contains(URL_KEY));
}

/// SIGKILL while chats go dead and fall back, three times: afterwards every event
/// reached the mail, from exactly one fallback delivery each (one `webhook-id`; a
/// fallback sent just before a kill may arrive twice, with the same id, as any delivery
/// may), and every dead chat delivery is linked to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_dead_letters_and_fallbacks_loses_and_doubles_nothing() {
    const EVENTS: usize = 12;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let target = CaptureServer::start();
    target.script("/chat/", [Reply::status(500).body("down")]);
    let place = place("").never_printing(&[SECRET]);
    let mut serving = place.serve(&[]);
    let services = json!({
        "chat": webhook(&target, "chat", json!({"fallback": "mail"})),
        "mail": webhook(&target, "mail", json!({"events": [], "secret": SECRET})),
    });
    assert_eq!(put_services(&serving, services).await.0, 200);
    for n in 0..EVENTS {
        post_item(&serving, &format!("item {n:02}")).await;
    }
    let done = || of(&place, "mail", "delivered").len() == EVENTS;
    for _ in 0..3 {
        let seen = target.count();
        wait_until(WAIT, "more requests", || {
            target.count() >= seen + 5 || done()
        });
        serving.kill();
        serving = place.serve(&[]);
    }
    wait_until(WAIT, "every event's fallback delivered", done);

    let dead = of(&place, "chat", "dead");
    assert_eq!(dead.len(), EVENTS);
    let fallbacks = of(&place, "mail", "delivered");
    let mut covered: Vec<&str> = fallbacks
        .iter()
        .map(|f| f["fallback_for"]["delivery"].as_str().unwrap())
        .collect();
    covered.sort_unstable();
    let mut dead_ids: Vec<&str> = dead.iter().map(|d| d["id"].as_str().unwrap()).collect();
    dead_ids.sort_unstable();
    assert_eq!(covered, dead_ids, "one fallback per dead delivery");
    for delivery in &dead {
        assert!(delivery["fell_back_to"].is_object(), "{delivery}");
    }
    let mut ids_per_title = std::collections::BTreeMap::<String, Vec<String>>::new();
    for request in target.requests_to("/mail/") {
        let title = request.json()["attributes"]["title"]
            .as_str()
            .unwrap()
            .to_owned();
        let id = request.header("webhook-id").unwrap().to_owned();
        let ids = ids_per_title.entry(title).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    assert_eq!(ids_per_title.len(), EVENTS, "every event reached the mail");
    for (title, ids) in &ids_per_title {
        assert_eq!(
            ids.len(),
            1,
            "{title} came from one fallback delivery: {ids:?}"
        );
    }
    drop(serving);
}
