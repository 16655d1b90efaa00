//! Secrets never leak. For every registered service, a canary goes into every secret
//! option (URLs carry it in their path and query); then the service is previewed, sent
//! to a target that answers 200, to one that answers 500 echoing the request back (whole,
//! or its URL in pieces), to a closed port and to a blocked address, and fed malformed
//! options. Canaries travel in JSON, form bodies, query strings, paths and headers, each
//! encoded its own way; every spelling must stay hidden. The canary must appear in no report (JSON or Debug), preview, error or log
//! line — nor may any credential header the service built.

mod common;

use std::sync::Arc;
use std::time::Duration;

use lookout::options::{Kind, OptionSpec};
use lookout::{Config, Engine, Event, Instance, Job, Outgoing, Registration, Settings, catalogue};
use lookout_testkit::{CaptureServer, Reply};
use serde_json::{Map, Value, json};

/// Every canary holds this (so that a canary shown in part is caught too); each secret
/// option gets its own canary, so that one redacted secret cannot hide another's leak.
const FRAGMENT: &str = "S3cretQwZ9";

/// The canary of the `n`th secret option: valid as a token and as base64 (a signing
/// secret). Its `+`, `/` and `=` are spelled differently in a form body, a query string
/// and a URL path (`%2B`, `%2F`, `%3D`), so a redactor that knows only the raw value
/// lets those spellings through, and they are caught (each still holds [`FRAGMENT`]).
fn canary(n: usize) -> String {
    format!("Cnry{n:02}{FRAGMENT}+/{FRAGMENT}Cnry{n:02}AAAQ==")
}

/// The service's secret options, numbered (secret `n` carries `canary(n)`).
fn secret_options(reg: &Registration) -> impl Iterator<Item = (usize, &'static OptionSpec)> {
    reg.schema
        .options
        .iter()
        .filter(|s| s.is_secret())
        .enumerate()
}

/// The service's example options pointed at `base`, with the canary in every secret.
fn canary_options(reg: &Registration, base: &str) -> Map<String, Value> {
    let mut options = common::pointed_at(reg, base);
    for (n, spec) in secret_options(reg) {
        let canary = canary(n);
        // An optional value its own check refuses cannot carry a canary (a PEM private
        // key); its own test proves it hidden (tests/client_tls.rs).
        if !spec.required && spec.check.is_some_and(|check| check(&canary).is_err()) {
            continue;
        }
        let current = options
            .get(spec.name)
            .cloned()
            .or_else(|| spec.default.map(Value::from));
        let value = match spec.kind {
            Kind::Url => json!(canary_url(
                current.as_ref().and_then(Value::as_str),
                base,
                &canary
            )),
            Kind::UrlList => {
                let first = match &current {
                    Some(Value::Array(urls)) => urls.first().and_then(Value::as_str),
                    Some(Value::String(url)) => Some(url.as_str()),
                    _ => None,
                };
                json!([canary_url(first, base, &canary)])
            }
            Kind::String => json!(canary),
            Kind::List => json!([canary]),
            // Secret flags, numbers and choices cannot carry a canary.
            Kind::Bool | Kind::Integer | Kind::Choice(_) => continue,
        };
        options.insert(spec.name.to_owned(), value);
    }
    options
}

/// `base` + the example URL's path + the canary as a path segment and a query value.
fn canary_url(example: Option<&str>, base: &str, canary: &str) -> String {
    let path = example
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let encoded: String = url::form_urlencoded::byte_serialize(canary.as_bytes()).collect();
    format!("{base}{path}/{encoded}?key={encoded}")
}

/// Whether the canaries reached the echoing target in a form body and in a query
/// string: the spellings the redactor must know besides the raw value were exercised.
fn assert_encoded_spellings_were_sent(arrived: &[lookout_testkit::Captured]) {
    let in_form = arrived.iter().any(|r| {
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
            && r.text().contains(&format!("{FRAGMENT}%2B%2F{FRAGMENT}"))
    });
    let in_query = arrived.iter().any(|r| {
        r.path
            .split_once('?')
            .is_some_and(|(_, query)| query.contains(&format!("{FRAGMENT}%2B%2F{FRAGMENT}")))
    });
    assert!(in_form, "no canary was sent in a form body");
    assert!(in_query, "no canary was sent in a query string");
}

/// Secret options given malformed values that still carry the canary.
fn malformed_options(reg: &Registration) -> Map<String, Value> {
    let mut options = common::example_options(reg);
    for (n, spec) in secret_options(reg) {
        let canary = canary(n);
        let bad = match spec.kind {
            Kind::Url => json!(format!("ftp://{canary}/x")),
            Kind::UrlList => json!([format!("not a url {canary}")]),
            Kind::String | Kind::List => json!({ "nested": canary }),
            Kind::Bool | Kind::Integer | Kind::Choice(_) => json!(canary),
        };
        options.insert(spec.name.to_owned(), bad);
    }
    options
}

/// Credential headers the service builds (sent, never to be shown), for this event.
fn credential_headers(instance: &Instance, event: &Event) -> Vec<String> {
    let job = Job {
        event,
        options: &instance.options,
        delivery_id: "msg_secrets",
        templates: &instance.templates,
        cut: lookout::text::budget::Cut::NONE,
        sent_at: None,
    };
    let Ok(outgoing) = instance.registration.service.build(&job) else {
        return Vec::new();
    };
    outgoing
        .iter()
        .flat_map(|o| match o {
            Outgoing::Http(request) => request
                .headers
                .iter()
                .filter(|h| h.sensitive)
                .flat_map(|h| {
                    // The whole value, and the credential after its scheme (`Basic …`).
                    let credential = h.value.split_once(' ').map(|(_, c)| c.to_owned());
                    std::iter::once(h.value.clone()).chain(credential)
                })
                .collect::<Vec<_>>(),
            #[allow(unreachable_patterns)]
            _ => Vec::new(),
        })
        .filter(|v| v.len() >= 8)
        .collect()
}

/// Whether every request the service builds for `event` goes to the capture server (a
/// service with a fixed public host is only previewed: tests never reach the internet).
fn stays_local(instance: &Instance, event: &Event, server: &CaptureServer) -> bool {
    let job = Job {
        event,
        options: &instance.options,
        delivery_id: "msg_secrets",
        templates: &instance.templates,
        cut: lookout::text::budget::Cut::NONE,
        sent_at: None,
    };
    match instance.registration.service.build(&job) {
        Ok(outgoing) => outgoing.iter().all(|o| match o {
            Outgoing::Http(request) => {
                request.url.host_str() == Some("127.0.0.1")
                    && request.url.port() == Some(server.addr().port())
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }),
        Err(_) => true,
    }
}

fn assert_clean(what: &str, text: &str, credentials: &[String]) {
    assert!(
        !text.contains(FRAGMENT),
        "a canary leaked into {what}:\n{text}"
    );
    for credential in credentials {
        assert!(
            !text.contains(credential.as_str()),
            "a credential header leaked into {what}:\n{text}"
        );
    }
}

fn settings() -> Settings {
    Settings {
        deadline: Duration::from_secs(4),
        request_timeout: Duration::from_secs(2),
        attempts: 2,
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        // Many requests go to one fake target per service; pacing is not what is tested.
        rate_limits: false,
        ..Settings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_on_any_path() {
    let logs = common::captured_logs();
    let ok_server = CaptureServer::start();
    let echo_server = CaptureServer::start();
    echo_server.script("/", [Reply::echo().with_status(500)]);
    let url_echo_server = CaptureServer::start();
    url_echo_server.script("/", [Reply::echo_url().with_status(500)]);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let open = Engine::with_settings(Settings {
        loopback_only: true,
        ..settings()
    })
    .unwrap();
    let guarded = Engine::with_settings(settings()).unwrap();

    let services = catalogue();
    let mut sent = 0;
    for (name, json) in common::fixtures() {
        let event = Event::parse(&json).unwrap();
        for (path, server, engine) in [
            ("a 200", Some(&ok_server), &open),
            ("a 500 echoing the request", Some(&echo_server), &open),
            ("a 500 echoing the URL", Some(&url_echo_server), &open),
            ("a closed port", None, &open),
            ("a blocked address", Some(&ok_server), &guarded),
        ] {
            let base = server.map_or(closed.clone(), |s| s.url());
            let mut instances = Vec::new();
            let mut credentials = Vec::new();
            for reg in &services {
                let instance = common::instance(reg, &canary_options(reg, &base));
                credentials.extend(credential_headers(&instance, &event));
                let preview = lookout::dispatch::preview_one(&event, &instance);
                let what = format!("{}'s preview of {name}", reg.name());
                assert_clean(
                    &what,
                    &serde_json::to_string(&preview).unwrap(),
                    &credentials,
                );
                assert_clean(&what, &format!("{preview:?}"), &credentials);
                for request in &preview.requests {
                    assert_clean(&what, &request.to_string(), &credentials);
                }
                assert_clean(&what, &format!("{:?}", instance.options), &credentials);
                assert_clean(&what, &instance.options.to_string(), &credentials);
                if server.is_none_or(|s| stays_local(&instance, &event, s)) {
                    instances.push(instance);
                } else {
                    eprintln!(
                        "{}: builds requests to a fixed host; previewed only",
                        reg.name()
                    );
                }
            }
            let report = engine.dispatch_to(&event, &instances).await;
            sent += report
                .results
                .iter()
                .filter(|r| r.delivery.attempts > 0)
                .count();
            let what = format!("the report of {name} sent to {path}");
            assert_clean(
                &what,
                &serde_json::to_string(&report).unwrap(),
                &credentials,
            );
            assert_clean(&what, &format!("{report:?}"), &credentials);
        }
    }
    assert!(sent > 0, "nothing was sent");
    assert!(
        !echo_server.requests().is_empty(),
        "the echoing server got nothing: the failure path was not exercised"
    );
    assert_encoded_spellings_were_sent(&echo_server.requests());
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!logged.is_empty(), "no log line was captured");
    assert_clean("the log", &logged, &[]);
}

#[test]
fn malformed_secrets_are_not_echoed_in_errors() {
    let _ = common::captured_logs();
    for reg in catalogue() {
        if !reg.schema.options.iter().any(|s| s.is_secret()) {
            continue;
        }
        let mut table = malformed_options(reg);
        table.insert("service".into(), json!(reg.name()));
        let config = json!({ "services": { "broken": table } }).to_string();
        let err = Config::parse(&config, "test config").expect_err("malformed options accepted");
        assert_clean(
            &format!("{}'s config error", reg.name()),
            &err.to_string(),
            &[],
        );
        assert_clean(
            &format!("{}'s config error", reg.name()),
            &format!("{err:?}"),
            &[],
        );
    }
}

/// The test can fail: a canary that reaches a report is caught.
#[test]
fn the_check_catches_a_leak() {
    let leaked = format!("HTTP 500: token={}", canary(3));
    let caught = std::panic::catch_unwind(|| assert_clean("a report", &leaked, &[]));
    assert!(caught.is_err());
    let partial = format!("token ending …{FRAGMENT}");
    assert!(std::panic::catch_unwind(|| assert_clean("a report", &partial, &[])).is_err());
}

/// A service putting a derived credential in a header (Basic auth: base64 of
/// `user:password`, which no option holds as such). Not in the registry.
struct BasicAuth;

const BASIC_OPTIONS: &[lookout::OptionSpec] = &[
    lookout::OptionSpec::url("url", "where").public(),
    lookout::OptionSpec::string("password", "the password").secret(),
];

#[lookout::async_trait]
impl lookout::Service for BasicAuth {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, lookout::BuildError> {
        let url = job.options.str("url").unwrap_or_default().parse().unwrap();
        let password = job.options.str("password").unwrap_or_default();
        Ok(vec![
            lookout::HttpRequest::post(url)
                .basic_auth("robot", password)
                .json(json!({}))
                .into(),
        ])
    }
}

static BASIC: Registration = Registration {
    module: "secrets::basic",
    docs: "Basic\n",
    category: lookout::Category::Webhook,
    events: &["*.created"],
    rate_limit: None,
    answers: lookout::Answers::BY_STATUS,
    limits: lookout::Limits::none("a test service"),
    schema: lookout::Schema::new(BASIC_OPTIONS),
    example: r#"url = "https://basic.example.com/"
password = "x""#,
    service: &BasicAuth,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_headers_echoed_back_are_redacted() {
    let server = CaptureServer::start();
    server.script("/", [Reply::echo().with_status(401)]);
    let options = json!({ "url": format!("{}/login", server.url()), "password": canary(0) });
    let instance = Instance {
        name: "basic".into(),
        registration: &BASIC,
        options: Arc::new(
            lookout::Options::validate("basic", &BASIC.schema, options.as_object().unwrap())
                .unwrap(),
        ),
        events: None,
        templates: Default::default(),
        lane: Default::default(),
        fallback: None,
        shaping: Default::default(),
    };
    let event = common::fixture("item");
    let credentials = credential_headers(&instance, &event);
    assert_eq!(credentials.len(), 2, "{credentials:?}");
    let engine = Engine::with_settings(settings().allowing_loopback()).unwrap();
    let report = engine
        .dispatch_to(&event, std::slice::from_ref(&instance))
        .await;
    let arrived = server.requests();
    assert_eq!(
        arrived[0].header("authorization"),
        Some(credentials[0].as_str()),
        "the credential was sent"
    );
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("authorization: [redacted]"), "{json}");
    assert_clean("the report", &json, &credentials);
}
