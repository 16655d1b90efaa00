//! Fault injection: targets that fail in every way a real one does, against the local
//! capture server. Each case checks the outcome and the number of tries, and that a
//! healthy service in the same dispatch was not held up.

mod common;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout::delivery::retry::Retry;
use lookout::{
    BuildError, Delivery, Engine, HttpRequest, Instance, Job, Options, Outcome, Outgoing,
    RateLimit, Registration, Schema, Service, ServiceResult, Settings, Transport,
};
use lookout_server::attempt::attempt;
use lookout_server::policy::RetrySchedule;
use lookout_server::store::{Claimed, Status, validate_stored};
use lookout_testkit::{CaptureServer, Reply, SmtpCaptureServer};
use serde_json::json;

/// Short timeouts and pauses so that the whole suite takes a few seconds.
fn fault_settings() -> Settings {
    Settings {
        deadline: Duration::from_secs(3),
        request_timeout: Duration::from_millis(400),
        first_byte_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_millis(400),
        attempts: 3,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..Settings::default()
    }
    .allowing_loopback()
}

fn webhook(name: &str, url: &str) -> Instance {
    let options = json!({ "urls": [url] });
    Instance::new(name, "webhook", options.as_object().unwrap()).unwrap()
}

fn discord(name: &str, url: &str) -> Instance {
    let options = json!({ "url": url });
    Instance::new(name, "discord", options.as_object().unwrap()).unwrap()
}

/// One dispatch to a faulty target (scripted with `replies`) and a healthy one.
struct Run {
    faulty: Delivery,
    healthy: Delivery,
    arrived: Vec<lookout_testkit::Captured>,
    took: Duration,
}

async fn run_with(settings: Settings, replies: Vec<Reply>) -> Run {
    run_service(webhook, settings, replies).await
}

/// [`run_with`], the faulty target an instance of the service `faulty` makes.
async fn run_service(
    faulty: fn(&str, &str) -> Instance,
    settings: Settings,
    replies: Vec<Reply>,
) -> Run {
    let server = CaptureServer::start();
    server.script("/faulty", replies);
    let engine = Engine::with_settings(settings).unwrap();
    let instances = [
        faulty("faulty", &format!("{}/faulty", server.url())),
        webhook("healthy", &format!("{}/healthy", server.url())),
    ];
    let started = Instant::now();
    let report = engine
        .dispatch_to(&common::fixture("item"), &instances)
        .await;
    let took = started.elapsed();
    let row = |name: &str| -> Delivery {
        let rows: Vec<&ServiceResult> = report
            .results
            .iter()
            .filter(|r| r.instance == name)
            .collect();
        assert_eq!(rows.len(), 1, "{name}: {report:?}");
        rows[0].delivery.clone()
    };
    let run = Run {
        faulty: row("faulty"),
        healthy: row("healthy"),
        arrived: server.requests_to("/faulty"),
        took,
    };
    eprintln!(
        "fault matrix: {:<40} {:<10} attempts={} {:?} in {:?}",
        describe(&run.faulty.outcome),
        run.faulty.outcome.label(),
        run.faulty.attempts,
        run.faulty.duration,
        run.took
    );
    assert_healthy(&run.healthy);
    run
}

async fn run(replies: Vec<Reply>) -> Run {
    run_with(fault_settings(), replies).await
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Delivered { status } => format!("delivered {status}"),
        Outcome::Failed { reason, .. } | Outcome::Disabled { reason, .. } => {
            reason.chars().take(40).collect()
        }
        Outcome::Skipped { reason } => reason.clone(),
    }
}

/// The healthy service delivered at once, whatever the faulty one did.
fn assert_healthy(healthy: &Delivery) {
    assert_eq!(
        healthy.outcome,
        Outcome::Delivered { status: 200 },
        "the healthy service was affected: {healthy:?}"
    );
    assert_eq!(healthy.attempts, 1, "{healthy:?}");
    assert!(
        healthy.duration < Duration::from_millis(1000),
        "the healthy service was held up: {healthy:?}"
    );
}

/// One request through the transport's entry point for services.
async fn send_one(transport: &Transport, request: HttpRequest, job: &Job<'_>) -> Delivery {
    let mut sent = transport.send_all(vec![request.into()], job).await;
    sent.remove(0)
}

fn failed_reason(delivery: &Delivery) -> (&str, Option<u16>) {
    match &delivery.outcome {
        Outcome::Failed { reason, status } => (reason, *status),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn gap(arrived: &[lookout_testkit::Captured], i: usize) -> Duration {
    arrived[i].at.duration_since(arrived[i - 1].at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_then_a_200_is_delivered_on_the_second_try() {
    let run = run(vec![Reply::status(500), Reply::ok()]).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 2);
    assert_eq!(run.arrived.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_what_retry_after_says() {
    let run = run(vec![
        Reply::status(429).header("Retry-After", "1"),
        Reply::ok(),
    ])
    .await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 2);
    assert!(
        gap(&run.arrived, 1) >= Duration::from_millis(990),
        "{:?}",
        gap(&run.arrived, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_discords_json_retry_after_is_honoured() {
    // Discord's service declares where the wait is: `wait: Wait::BodySeconds(…)`.
    let replies = vec![
        Reply::status(429)
            .body(r#"{"message":"You are being rate limited.","retry_after":0.3,"global":false}"#),
        Reply::ok(),
    ];
    let run = run_service(discord, fault_settings(), replies).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 2);
    assert!(
        gap(&run.arrived, 1) >= Duration::from_millis(290),
        "{:?}",
        gap(&run.arrived, 1)
    );
}

/// A service whose platform gives its wait in a header of its own (not in the registry).
static RESET_HEADER: Registration = Registration {
    module: "faults::reset_header",
    docs: "Reset header\n",
    category: lookout::Category::Webhook,
    events: &["*.created"],
    rate_limit: None,
    answers: lookout::Answers::BY_STATUS
        .wait(lookout::Wait::HeaderSeconds("X-RateLimit-Reset-After")),
    limits: lookout::Limits::none("a test service"),
    schema: Schema::new(PACED_OPTIONS),
    example: r#"url = "https://reset.example.com/""#,
    service: &Paced,
};

fn reset_header(name: &str, url: &str) -> Instance {
    Instance {
        registration: &RESET_HEADER,
        ..paced(name, url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_a_wait_in_a_declared_header_is_honoured() {
    let replies = vec![
        Reply::status(429).header("X-RateLimit-Reset-After", "0.4"),
        Reply::ok(),
    ];
    // Without the header read, the pause would be the backoff: at most 100 ms.
    let run = run_service(reset_header, fault_settings(), replies).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 2);
    assert!(
        gap(&run.arrived, 1) >= Duration::from_millis(390),
        "{:?}",
        gap(&run.arrived, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_budget_stops_at_once() {
    let run = run(vec![
        Reply::status(429).header("Retry-After", "60"),
        Reply::ok(),
    ])
    .await;
    let (reason, status) = failed_reason(&run.faulty);
    assert_eq!(status, Some(429));
    assert!(reason.contains("retry after 1m: beyond"), "{reason}");
    assert_eq!(run.faulty.attempts, 1);
    assert!(run.took < Duration::from_secs(1), "{:?}", run.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_times_out_and_the_next_try_delivers() {
    let run = run(vec![Reply::hang(), Reply::ok()]).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 2);
    assert!(run.faulty.duration >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_always_hangs_fails_after_every_try_within_the_deadline() {
    let run = run(vec![Reply::hang()]).await;
    let (reason, _) = failed_reason(&run.faulty);
    assert_eq!(reason, "no answer within 400ms");
    assert_eq!(run.faulty.attempts, 3);
    assert_eq!(run.arrived.len(), 3);
    assert!(run.took < Duration::from_secs(3), "{:?}", run.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_before_the_answer_is_complete_is_retried() {
    // The connection breaks before a whole status line and headers arrived (hyper sends
    // them with the first body bytes): nothing was acknowledged, so try again.
    let run = run(vec![Reply::reset(), Reply::ok()]).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_always_resets_fails_after_every_try() {
    let run = run(vec![Reply::reset()]).await;
    let (reason, status) = failed_reason(&run.faulty);
    assert_eq!(status, None);
    assert!(reason.contains("connection closed"), "{reason}");
    assert_eq!(run.faulty.attempts, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_body_after_a_200_counts_as_delivered() {
    // The target said 200 before the connection broke: it has the event, and sending
    // it again would only make a duplicate.
    let run = run(vec![Reply::reset_after(Duration::from_millis(100))]).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_body_after_a_503_is_retried() {
    let run = run(vec![
        Reply::reset_after(Duration::from_millis(100)).with_status(503),
        Reply::ok(),
    ])
    .await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_without_an_answer_is_retried() {
    let run = run(vec![Reply::abort(), Reply::ok()]).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_a_private_address_is_not_followed() {
    let run = run(vec![
        Reply::status(302).header("Location", "http://10.0.0.1/admin"),
    ])
    .await;
    let (reason, status) = failed_reason(&run.faulty);
    assert_eq!(status, Some(302));
    assert!(
        reason.contains("redirect to http://10.0.0.1/admin not followed"),
        "{reason}"
    );
    assert_eq!(run.faulty.attempts, 1, "3xx is not retried");
    assert_eq!(run.arrived.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_disables_the_target() {
    let run = run(vec![Reply::status(410), Reply::ok()]).await;
    assert!(
        matches!(run.faulty.outcome, Outcome::Disabled { status: 410, .. }),
        "{:?}",
        run.faulty
    );
    assert_eq!(run.faulty.attempts, 1, "410 is never retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_4xx_are_not_retried() {
    for status in [400, 401, 403, 404, 422] {
        let run = run(vec![Reply::status(status), Reply::ok()]).await;
        assert_eq!(failed_reason(&run.faulty).1, Some(status));
        assert_eq!(run.faulty.attempts, 1, "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_answer_is_capped_and_delivered() {
    let run = run(vec![Reply::huge(10 * 1024 * 1024)]).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_error_answer_is_capped_in_the_report() {
    let run = run(vec![Reply::huge(10 * 1024 * 1024).with_status(400)]).await;
    let (reason, status) = failed_reason(&run.faulty);
    assert_eq!(status, Some(400));
    assert!(reason.len() < 300, "{} bytes of reason", reason.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_ends_on_time() {
    // 200 then a byte every 50ms for ten seconds: cut at the request timeout.
    let run = run(vec![Reply::slow_body(1, 200, Duration::from_millis(50))]).await;
    assert_eq!(run.faulty.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(run.faulty.attempts, 1);
    assert!(
        run.faulty.duration < Duration::from_millis(1000),
        "{:?}",
        run.faulty.duration
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_error_body_ends_on_time_on_every_try() {
    let run = run(vec![
        Reply::slow_body(1, 200, Duration::from_millis(50)).with_status(503),
    ])
    .await;
    let (reason, status) = failed_reason(&run.faulty);
    assert_eq!(status, Some(503));
    assert!(reason.contains("did not come in time"), "{reason}");
    assert_eq!(run.faulty.attempts, 3);
    assert!(run.took < Duration::from_secs(3), "{:?}", run.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_tried_every_time_then_fails() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let healthy = CaptureServer::start();
    let engine = Engine::with_settings(fault_settings()).unwrap();
    let report = engine
        .dispatch_to(
            &common::fixture("item"),
            &[
                webhook("faulty", &format!("http://{closed}/faulty")),
                webhook("healthy", &format!("{}/healthy", healthy.url())),
            ],
        )
        .await;
    let faulty = &report.results[0].delivery;
    let (reason, _) = failed_reason(faulty);
    assert!(reason.starts_with("connection failed"), "{reason}");
    assert_eq!(faulty.attempts, 3);
    assert_healthy(&report.results[1].delivery);
    eprintln!(
        "fault matrix: closed port: {reason} attempts={}",
        faulty.attempts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_before_the_deadline_with_the_real_reason() {
    let settings = Settings {
        deadline: Duration::from_millis(800),
        attempts: 50,
        ..fault_settings()
    };
    let run = run_with(settings, vec![Reply::status(503)]).await;
    let (reason, status) = failed_reason(&run.faulty);
    assert_eq!(status, Some(503), "{reason}");
    assert!(run.faulty.attempts >= 3, "{:?}", run.faulty);
    assert!(run.faulty.attempts < 50);
    assert!(run.took < Duration::from_millis(800), "{:?}", run.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_attempt_means_no_retries() {
    let settings = Settings {
        attempts: 1,
        ..fault_settings()
    };
    let run = run_with(settings, vec![Reply::status(500), Reply::ok()]).await;
    assert_eq!(failed_reason(&run.faulty).1, Some(500));
    assert_eq!(run.faulty.attempts, 1);
    assert_eq!(run.arrived.len(), 1);
}

/// What a durable worker uses: one try, and the verdict to schedule the next itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_try_reports_whether_and_when_to_retry() {
    let server = CaptureServer::start();
    server.script("/a", [Reply::status(503).header("Retry-After", "7")]);
    server.script("/b", [Reply::status(404)]);
    server.script("/c", [Reply::ok()]);
    let transport = Transport::new(fault_settings())
        .unwrap()
        .one_try(HashSet::new());
    let event = common::fixture("item");
    let options = Options::default();
    let job = Job {
        event: &event,
        options: &options,
        delivery_id: "msg_worker",
        templates: &Default::default(),
        cut: lookout::text::budget::Cut::NONE,
        sent_at: None,
    };
    let job = &job;
    let once = |path: &str| {
        let request = HttpRequest::post(format!("{}{path}", server.url()).parse().unwrap());
        let transport = transport.clone();
        async move { send_one(&transport, request, job).await }
    };
    let a = once("/a").await;
    assert_eq!(
        a.retry,
        Retry::Yes {
            after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(a.attempts, 1);
    assert!(a.outcome.is_failure());
    assert_eq!(once("/b").await.retry, Retry::No);
    let c = once("/c").await;
    assert_eq!(c.retry, Retry::No);
    assert_eq!(c.outcome, Outcome::Delivered { status: 200 });
    assert_eq!(server.requests().len(), 3, "one request each, no retries");
    assert_eq!(transport.attempts().len(), 3, "each try recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_blocked_by_default() {
    let server = CaptureServer::start();
    let port = server.addr().port();
    let guarded = Settings {
        allow_networks: Vec::new(),
        ..fault_settings()
    };
    let engine = Engine::with_settings(guarded).unwrap();
    let cases = [
        (
            format!("http://127.0.0.1:{port}/target-a"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://2130706433:{port}/target-b"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://0x7f.1:{port}/target-c"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/target-d"),
            "IPv4-mapped address of 127.0.0.1",
        ),
        (
            format!("http://0:{port}/target-e"),
            "0.0.0.0 is an unspecified",
        ),
        (
            format!("http://localhost:{port}/target-f"),
            "localhost resolves to",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        (
            "http://10.0.0.1/".to_owned(),
            "blocked: 10.0.0.1 is a private address",
        ),
    ];
    let instances: Vec<Instance> = cases
        .iter()
        .enumerate()
        .map(|(i, (url, _))| webhook(&format!("target{i}"), url))
        .collect();
    let report = engine
        .dispatch_to(&common::fixture("item"), &instances)
        .await;
    for ((url, want), row) in cases.iter().zip(&report.results) {
        let (reason, _) = failed_reason(&row.delivery);
        assert!(reason.starts_with("blocked: "), "{url}: {reason}");
        assert!(reason.contains(want), "{url}: {reason}");
        assert_eq!(
            row.delivery.attempts, 1,
            "{url}: a blocked target is not retried"
        );
        eprintln!("fault matrix: {url} → {reason}");
    }
    assert!(server.requests().is_empty(), "a blocked request went out");
}

/// A service that asks for a slow pace, to see the engine apply it per target.
struct Paced;

const PACED_OPTIONS: &[lookout::OptionSpec] = &[lookout::OptionSpec::url("url", "where")];

#[lookout::async_trait]
impl Service for Paced {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let url = job.options.str("url").unwrap_or_default();
        let url = url
            .parse()
            .map_err(|e| BuildError::Invalid(format!("url: {e}")))?;
        Ok(vec![
            HttpRequest::post(url)
                .json(json!({"kind": job.event.kind()}))
                .into(),
        ])
    }
}

/// Not in the registry (so the other test binaries never see it).
static PACED: Registration = Registration {
    module: "faults::paced",
    docs: "Paced\n",
    category: lookout::Category::Webhook,
    events: &["*.created"],
    rate_limit: Some(RateLimit::every(Duration::from_millis(250))),
    answers: lookout::Answers::BY_STATUS,
    limits: lookout::Limits::none("a test service"),
    schema: Schema::new(PACED_OPTIONS),
    example: r#"url = "https://paced.example.com/""#,
    service: &Paced,
};

fn paced(name: &str, url: &str) -> Instance {
    let options = json!({ "url": url });
    Instance {
        name: name.to_owned(),
        registration: &PACED,
        options: Arc::new(
            Options::validate(name, &PACED.schema, options.as_object().unwrap()).unwrap(),
        ),
        events: None,
        templates: Default::default(),
        lane: Default::default(),
        fallback: None,
        shaping: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_one_target_is_paced_while_others_run_at_full_speed() {
    let server = CaptureServer::start();
    let engine = Engine::with_settings(fault_settings()).unwrap();
    let instances = [
        paced("one", &format!("{}/paced/one", server.url())),
        paced("two", &format!("{}/paced/two", server.url())),
        webhook("free", &format!("{}/free", server.url())),
    ];
    let event = common::fixture("item");
    let started = Instant::now();
    let bursts: Vec<_> = (0..4)
        .map(|_| {
            let (engine, event, instances) = (engine.clone(), event.clone(), instances.clone());
            tokio::spawn(async move { engine.dispatch_to(&event, &instances).await })
        })
        .collect();
    for burst in bursts {
        let report = burst.await.unwrap();
        assert!(!report.has_failures(), "{report:?}");
    }
    let arrivals = |path: &str| -> Vec<Duration> {
        server
            .requests_to(path)
            .iter()
            .map(|r| r.at.duration_since(started))
            .collect()
    };
    let (one, two, free) = (
        arrivals("/paced/one"),
        arrivals("/paced/two"),
        arrivals("/free"),
    );
    assert_eq!((one.len(), two.len(), free.len()), (4, 4, 4));
    // One per 250ms per target: the fourth comes no sooner than 750ms after the first…
    assert!(one[3] - one[0] >= Duration::from_millis(700), "{one:?}");
    assert!(two[3] - two[0] >= Duration::from_millis(700), "{two:?}");
    // …while the two targets do not wait for each other, and the free service not at all.
    assert!(two[0] < Duration::from_millis(200), "{two:?}");
    assert!(free[3] < Duration::from_millis(300), "{free:?}");
    eprintln!("fault matrix: rate limit 1/250ms: one={one:?} two={two:?} free={free:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_no_slot_in_its_budget_fails_without_waiting() {
    let server = CaptureServer::start();
    let transport = Transport::new(fault_settings())
        .unwrap()
        .with_rate_limit(Some(RateLimit::every(Duration::from_secs(60))));
    let event = common::fixture("item");
    let options = Options::default();
    let job = Job {
        event: &event,
        options: &options,
        delivery_id: "msg_paced",
        templates: &Default::default(),
        cut: lookout::text::budget::Cut::NONE,
        sent_at: None,
    };
    let request = HttpRequest::post(format!("{}/slow-lane", server.url()).parse().unwrap());
    let first = send_one(&transport, request.clone(), &job).await;
    assert_eq!(first.outcome, Outcome::Delivered { status: 200 });
    let started = Instant::now();
    let second = send_one(&transport, request.clone(), &job).await;
    let (reason, _) = failed_reason(&second);
    assert!(reason.starts_with("rate limited: no slot"), "{reason}");
    assert!(
        reason.contains("beyond this delivery's time budget"),
        "{reason}"
    );
    assert_eq!(second.attempts, 1);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(
        server.requests().len(),
        1,
        "the second request was not sent"
    );
    // The durable worker's transport keeps no pace of its own: its lanes claim a
    // delivery only when the destination has a slot (server/src/lanes.rs).
    let worker = send_one(&transport.one_try(HashSet::new()), request, &job).await;
    assert_eq!(worker.outcome, Outcome::Delivered { status: 200 });
}

/// Under `lookout serve`, an email that failed for now (`451`) is rescheduled like an
/// HTTP request, and sent by the next attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reschedules_an_email_that_failed_for_now() {
    let server = SmtpCaptureServer::start();
    server.answer_busy(1);
    let options = json!({
        "host": server.host(), "port": server.port(), "security": "none",
        "from": "bot@example.com", "to": ["team@example.com"],
    });
    let mut claimed = Claimed {
        id: "msg_mail".to_owned(),
        event_id: "evt_mail".to_owned(),
        product: "p1".to_owned(),
        instance: "mail".to_owned(),
        service: "email".to_owned(),
        payload: lookout_testkit::fixture_json("item"),
        attempts: 0,
        step: 0,
        done_targets: Vec::new(),
        generation: Some(1),
        disabled_targets: Vec::new(),
        lane: "lane".to_owned(),
        throttles: 0,
        trace_context: None,
        fallback_for: None,
        digest: None,
    };
    let mail = validate_stored("mail", "email", options.as_object().unwrap()).unwrap();
    let transport = Transport::new(fault_settings()).unwrap();
    let schedule = RetrySchedule {
        jitter: 0.0,
        ..RetrySchedule::from_str("1s").unwrap()
    };
    let first = attempt(&claimed, Ok(&mail), &transport, &schedule).await;
    assert_eq!(first.status, Status::Failed, "{first:?}");
    assert!(first.next_at.is_some());
    assert_eq!(first.attempts.len(), 1, "one try per attempt");
    assert_eq!(first.attempts[0].status, Some(451));
    assert!(server.mails().is_empty());

    claimed.attempts = 1;
    claimed.step = first.step;
    let second = attempt(&claimed, Ok(&mail), &transport, &schedule).await;
    assert_eq!(second.status, Status::Delivered, "{second:?}");
    assert_eq!(second.done_targets.len(), 1);
    assert_eq!(server.wait_for(1, Duration::from_secs(5)).len(), 1);
}
