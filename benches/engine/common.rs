//! What every scenario uses: the engine's settings, webhook instances, and the bare
//! reqwest client the engine is compared with.

use std::time::Duration;

use bytes::Bytes;
use lookout::{Engine, Event, Instance, Outcome, Report, Settings};
use serde_json::{Map, Value};

/// The sample event every scenario sends (the webhook forwards it byte for byte).
pub const ITEM: &str = lookout::samples::ALL[0].1;

pub fn event() -> Event {
    Event::parse(ITEM).expect("the item fixture parses")
}

/// The engine's defaults, with the deadline raised so that no bench run is cut short.
///
/// Always `..Settings::default()`: the sink is on 127.0.0.1, so when the engine grows a
/// guard against private addresses, the setting that lets loopback through goes here.
pub fn settings() -> Settings {
    Settings {
        deadline: Duration::from_secs(60),
        request_timeout: Duration::from_secs(30),
        ..Settings::default()
    }
    // The sink is on 127.0.0.1, which the SSRF guard refuses unless allowed.
    .allowing_loopback()
}

pub fn engine(settings: Settings) -> Engine {
    Engine::with_settings(settings).expect("engine")
}

/// A webhook instance posting to `urls`.
pub fn webhook(name: &str, urls: &[String]) -> Instance {
    let mut options = Map::new();
    options.insert("urls".into(), Value::from(urls.to_vec()));
    Instance::new(name, "webhook", &options).expect("webhook options")
}

/// Webhook instances with one URL each.
pub fn webhooks(urls: &[String]) -> Vec<Instance> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| webhook(&format!("target-{i}"), std::slice::from_ref(url)))
        .collect()
}

pub fn delivered(report: &Report) -> usize {
    report
        .results
        .iter()
        .filter(|r| matches!(r.delivery.outcome, Outcome::Delivered { .. }))
        .count()
}

/// Panics unless exactly `expected` rows were delivered: a bench that measures failures
/// measures nothing.
pub fn expect_delivered(report: &Report, expected: usize) {
    let got = delivered(report);
    if got != expected {
        let failure = report
            .results
            .iter()
            .find(|r| r.delivery.outcome.is_failure())
            .map(|r| format!("{:?}", r.delivery.outcome));
        panic!("{got} of {expected} delivered; first failure: {failure:?}");
    }
}

/// A plain reqwest client, as a hand-written sender would build it.
pub fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// The event's bytes, as the webhook sends them.
pub fn body(event: &Event) -> Bytes {
    Bytes::copy_from_slice(event.raw().as_bytes())
}

/// The same POST the webhook makes, by hand: JSON body, whole answer read.
pub async fn bare_post(client: &reqwest::Client, url: &str, body: Bytes) {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("bare POST failed: {e}"));
    assert!(
        response.status().is_success(),
        "bare POST: {}",
        response.status()
    );
    response.bytes().await.expect("bare POST answer");
}
