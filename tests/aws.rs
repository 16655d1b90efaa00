//! The AWS services (sqs, sns, kinesis, eventbridge, s3) against a local AWS emulator:
//! moto's server mode (from `.venv/`, installed by `make test-deps`), started once for
//! this test binary on a free loopback port. Events go through a real engine to the
//! emulator; what arrived is read back with boto3 (`tests/aws/moto_client.py`): from
//! SQS, from the Kinesis stream, from the SQS queue an EventBridge rule forwards to,
//! from the S3 bucket. moto does not check signatures (AWS's own test vectors do, in
//! `lookout/src/request/signing.rs`), but it routes each request by the credential
//! scope of its `Authorization` header, so a request signed for the wrong service or
//! region goes nowhere.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lookout::delivery::retry::Retry;
use lookout::{Engine, Event, Instance, Outcome, Report};
use serde_json::{Value, json};

/// A moto server on 127.0.0.1. It runs under a shell that stops it when its standard
/// input closes: when this is dropped, or when the test binary exits (a static is never
/// dropped), so no emulator outlives the tests.
struct Moto {
    port: u16,
    keeper: Child,
}

impl Moto {
    fn start() -> Moto {
        Moto::start_on(free_port())
    }

    fn start_on(port: u16) -> Moto {
        let moto = venv().join("bin/moto_server");
        assert!(
            moto.exists(),
            "moto is not installed ({} is missing): run `make test-deps`",
            moto.display()
        );
        let keeper = Command::new("sh")
            .args([
                "-c",
                r#""$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & moto=$!; cat >/dev/null; kill $moto; wait $moto"#,
            ])
            .arg(&moto)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        let started = Moto { port, keeper };
        started.wait_until_ready();
        started
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `GET /moto-api/` (bounded: 30 s).
    fn wait_until_ready(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        let probe = format!("{}/moto-api/", self.url());
        while Instant::now() < until {
            if answers_200(self.port, "/moto-api/") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto did not answer {probe} within 30 s");
    }

    /// Runs `tests/aws/moto_client.py` with `args`; its JSON output.
    fn client(&self, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws/moto_client.py");
        let out = Command::new(venv().join("bin/python"))
            .arg(script)
            .args(args)
            .env("MOTO_URL", self.url())
            .output()
            .expect("run moto_client.py");
        assert!(
            out.status.success(),
            "moto_client.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("moto_client.py prints JSON")
    }

    fn create_queue(&self, name: &str) -> String {
        self.client(&["create-queue", name])["queue_url"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Every message waiting on the queue: `{"body", "attributes", "system"}` each.
    fn receive(&self, queue_url: &str) -> Vec<Value> {
        let got = self.client(&["receive", queue_url]);
        got["messages"].as_array().unwrap().clone()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.keeper.stdin.take());
        let _ = self.keeper.wait();
    }
}

/// The emulator the tests share (each uses queues and topics of its own).
fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}

fn venv() -> PathBuf {
    std::env::var_os("LOOKOUT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"))
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200 (plain HTTP/1.0, no client needed).
fn answers_200(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut status = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut status).is_ok()
        && status.ends_with(b" 200")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/MotoSecretKey000000";

fn instance(service: &str, options: Value) -> Instance {
    common::instance(
        lookout::service::find(service).unwrap(),
        options.as_object().unwrap(),
    )
}

fn sqs_options(queue_url: &str) -> Value {
    json!({
        "queue": queue_url,
        "region": "us-east-1",
        "access_key_id": "AKIAMOTOTEST00000000",
        "secret_access_key": SECRET_KEY,
    })
}

/// `service` with `options` sends `fixture` with the tests' default settings.
async fn send_as(service: &str, options: Value, fixture: &str) -> Report {
    send(
        &instance(service, options),
        lookout_testkit::settings(),
        fixture,
    )
    .await
}

async fn send(instance: &Instance, settings: lookout::Settings, fixture: &str) -> Report {
    let event = Event::parse(&lookout_testkit::fixture_json(fixture)).unwrap();
    let engine = Engine::with_settings(settings).unwrap();
    let report = engine
        .dispatch_to(&event, std::slice::from_ref(instance))
        .await;
    lookout_testkit::assert_hidden(&report, SECRET_KEY);
    report
}

fn delivered(report: &Report) -> bool {
    report
        .results
        .iter()
        .all(|r| matches!(r.delivery.outcome, Outcome::Delivered { .. }))
}

/// The one message on the queue, checked to hold `body` and the attributes of `event`.
fn the_message(moto: &Moto, queue_url: &str, body: &str, event: &str) -> Value {
    let messages = moto.receive(queue_url);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = messages[0].clone();
    assert_eq!(message["body"], body);
    assert_eq!(message["attributes"]["event"], event);
    let id = message["attributes"]["delivery_id"].as_str().unwrap();
    assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_delivers_the_payload_with_its_delivery_id() {
    let moto = moto();
    let queue = moto.create_queue("sprintly-events");
    let report = send_as("sqs", sqs_options(&queue), "item").await;
    assert!(delivered(&report), "{report:?}");
    let payload = lookout_testkit::fixture_json("item");
    the_message(moto, &queue, &payload, "Item.created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_fifo_queues_deduplicate_on_the_delivery_id() {
    let moto = moto();
    let queue = moto.create_queue("sprintly-events.fifo");
    let mut options = sqs_options(&queue);
    options["body"] = json!("message");
    let report = send_as("sqs", options, "comment").await;
    assert!(delivered(&report), "{report:?}");
    let messages = moto.receive(&queue);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert!(
        message["body"].as_str().unwrap().contains("commented on"),
        "{message}"
    );
    assert_eq!(message["system"]["MessageGroupId"], "sprintly-product-1111");
    assert_eq!(
        message["system"]["MessageDeduplicationId"],
        message["attributes"]["delivery_id"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_publishes_to_the_topic_subscribers() {
    let moto = moto();
    let queue = moto.create_queue("sprintly-subscriber");
    let topic = moto.client(&["create-topic", "sprintly-topic", &queue])["topic_arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let options = json!({
        "topic_arn": topic,
        "access_key_id": "AKIAMOTOTEST00000000",
        "secret_access_key": SECRET_KEY,
        "endpoint": moto.url(),
    });
    let report = send_as("sns", options, "deploy").await;
    assert!(delivered(&report), "{report:?}");
    let payload = lookout_testkit::fixture_json("deploy");
    the_message(moto, &queue, &payload, "Deploy.created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_queue_disables_the_destination() {
    let moto = moto();
    let missing = format!("{}/123456789012/never-created", moto.url());
    let report = send_as("sqs", sqs_options(&missing), "item").await;
    assert!(disabled_saying(&report, "QueueDoesNotExist"), "{report:?}");
}

/// A stopped emulator is a failure worth retrying; once it is back, the same delivery
/// goes through and arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_emulator_is_retried_and_delivered_once_back() {
    let port = free_port();
    let first = Moto::start_on(port);
    let queue = first.create_queue("sprintly-restart");
    let sqs = instance("sqs", sqs_options(&queue));
    drop(first);

    let once = lookout::Settings {
        attempts: 1,
        ..lookout_testkit::settings()
    };
    let report = send(&sqs, once, "item").await;
    let delivery = &report.results[0].delivery;
    assert!(
        matches!(&delivery.outcome, Outcome::Failed { reason, .. } if reason.contains("connection failed")),
        "{delivery:?}"
    );
    assert!(matches!(delivery.retry, Retry::Yes { .. }), "{delivery:?}");

    // moto keeps its queues in memory: the restarted emulator needs the queue again.
    let second = Moto::start_on(port);
    assert_eq!(second.create_queue("sprintly-restart"), queue);
    let report = send(&sqs, lookout_testkit::settings(), "item").await;
    assert!(delivered(&report), "{report:?}");
    let payload = lookout_testkit::fixture_json("item");
    the_message(&second, &queue, &payload, "Item.created");
}

// --- Kinesis, EventBridge and S3 (issue 28) ----------------------------------------------

/// Credentials and the emulator as the endpoint, with `more` options.
fn aws_options(moto: &Moto, more: Value) -> Value {
    let mut options = json!({
        "region": "us-east-1",
        "access_key_id": "AKIAMOTOTEST00000000",
        "secret_access_key": SECRET_KEY,
        "endpoint": moto.url(),
    });
    options
        .as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    options
}

fn disabled_saying(report: &Report, why: &str) -> bool {
    matches!(&report.results[0].delivery.outcome, Outcome::Disabled { reason, .. } if reason.contains(why))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_puts_the_payload_on_the_stream_keyed_by_its_path() {
    let moto = moto();
    moto.client(&["create-stream", "sprintly-stream"]);
    let options = aws_options(
        moto,
        json!({"stream": "sprintly-stream", "partition_path": "attributes.number"}),
    );
    let report = send_as("kinesis", options, "item").await;
    assert!(delivered(&report), "{report:?}");
    let records = moto.client(&["read-stream", "sprintly-stream"])["records"].clone();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let payload = lookout_testkit::fixture_json("item");
    assert_eq!(records[0]["data"], payload.as_str());
    let item: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        records[0]["partition_key"],
        item["attributes"]["number"].to_string()
    );

    let missing = aws_options(moto, json!({"stream": "never-created"}));
    let report = send_as("kinesis", missing, "item").await;
    assert!(
        disabled_saying(&report, "the stream does not exist"),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_events_reach_the_rule_target_with_the_payload_as_detail() {
    let moto = moto();
    let queue = moto.create_queue("sprintly-bus-target");
    moto.client(&["create-bus", "sprintly-bus", &queue]);
    let options = aws_options(moto, json!({"bus": "sprintly-bus"}));
    let report = send_as("eventbridge", options, "comment").await;
    assert!(delivered(&report), "{report:?}");
    let messages = moto.receive(&queue);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let arrived: Value = serde_json::from_str(messages[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(arrived["source"], "sprintly");
    assert_eq!(arrived["detail-type"], "Comment.created");
    let payload: Value = serde_json::from_str(&lookout_testkit::fixture_json("comment")).unwrap();
    assert_eq!(arrived["detail"], payload);

    let missing = aws_options(moto, json!({"bus": "never-created"}));
    let report = send_as("eventbridge", missing, "comment").await;
    assert!(
        disabled_saying(&report, "the event bus does not exist"),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_writes_one_object_per_event_under_its_key() {
    let moto = moto();
    moto.client(&["create-bucket", "sprintly-archive"]);
    let options = aws_options(moto, json!({"bucket": "sprintly-archive"}));
    let s3 = instance("s3", options);
    for fixture in ["item", "comment"] {
        let report = send(&s3, lookout_testkit::settings(), fixture).await;
        assert!(delivered(&report), "{report:?}");
    }
    let objects = moto.client(&["objects", "sprintly-archive"])["objects"].clone();
    let objects = objects.as_array().unwrap();
    assert_eq!(objects.len(), 2, "{objects:?}");
    // `{date}` is the day the delivery was made (UTC): today, or the day before just
    // after midnight.
    let day = |ago: u64| {
        let at = std::time::SystemTime::now() - Duration::from_secs(ago);
        humantime::format_rfc3339_seconds(at).to_string()[..10].to_owned()
    };
    let days = [day(0), day(120)];
    for object in objects {
        let key = object["key"].as_str().unwrap();
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 4, "{key}");
        assert_eq!(parts[0], "1111", "{key}");
        assert!(
            parts[3].starts_with("msg_") && parts[3].ends_with(".json"),
            "{key}"
        );
        assert!(days.contains(&parts[2].to_owned()), "{key}: not {days:?}");
        let fixture = match parts[1] {
            "Item" => "item",
            "Comment" => "comment",
            other => panic!("model {other} in {key}"),
        };
        assert_eq!(
            object["body"],
            lookout_testkit::fixture_json(fixture).as_str()
        );
        assert_eq!(object["type"], "application/json");
        assert_eq!(object["metadata"]["event"], format!("{}.created", parts[1]));
    }

    let missing = aws_options(moto, json!({"bucket": "never-created"}));
    let report = send_as("s3", missing, "item").await;
    assert!(
        disabled_saying(&report, "the bucket does not exist"),
        "{report:?}"
    );
}

/// The SSRF guard holds for the new services as for every other, at configuration
/// time (the endpoint option names a refused address) and at send time (nothing is
/// sent): the emulator on loopback is refused without `loopback_only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssrf_guard_refuses_the_emulator_without_loopback_only() {
    let moto = moto();
    let guarded = lookout::Settings {
        loopback_only: false,
        ..lookout_testkit::settings()
    };
    let guard = lookout::delivery::ssrf::Guard::for_settings(&guarded);
    for (service, more) in [
        ("kinesis", json!({"stream": "sprintly-stream"})),
        ("eventbridge", json!({})),
        ("s3", json!({"bucket": "sprintly-archive"})),
    ] {
        let instance = instance(service, aws_options(moto, more));
        let problems = lookout::config::refused_targets(&instance, &guard);
        assert!(
            problems.len() == 1 && problems[0].option == "endpoint",
            "{service}: {problems:?}"
        );
        let report = send(&instance, guarded.clone(), "item").await;
        assert!(
            matches!(&report.results[0].delivery.outcome, Outcome::Failed { reason, .. } if reason.contains("blocked")),
            "{service}: {report:?}"
        );
    }
}
