//! Scale-out on PostgreSQL, end to end: real `lookout worker` and `lookout serve
//! --no-workers` processes sharing one database (a fresh schema in the cluster that
//! `scripts/with-postgres.sh` starts), delivering over real HTTP to a local capture
//! server on 127.0.0.1.
//!
//! The big one: 4 workers, 10,000 deliveries, one worker killed with SIGKILL mid-run.
//! Every delivery must arrive and end `delivered`; a delivery may arrive twice only if a
//! worker took it over after another's lease ran out (the database counts those). It
//! prints its figures. `LOOKOUT_SCALE_DELIVERIES` and `LOOKOUT_SCALE_WORKERS` change the
//! size (e.g. for a release-mode measurement: `cargo test --release --test scale`),
//! `LOOKOUT_SCALE_KILLS=0` leaves every worker alive, and
//! `LOOKOUT_SCALE_TARGET_DELAY_MS` makes the target answer slowly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_server::routing::RouteCache;
use lookout_server::store::{self, NewEvent, Status, Store, StoredInstance};
use lookout_testkit::postgres::TestSchema;
use lookout_testkit::{CaptureServer, Reply};
use serde_json::{Value, json};

const TOKEN: &str = "scale-token-0123456789abcdef";
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The PostgreSQL tests here run one at a time: each starts several processes with a
/// pool of connections, and the big one measures throughput.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The engine settings every process here sends with: short timeouts (the target is a
/// local capture server), through the shared test `[engine]` lines.
fn engine_toml(dir: &Path) -> PathBuf {
    let path = dir.join("engine.toml");
    let text = format!(
        "[engine]\n{}\nrequest_timeout = \"1s\"\ndeadline = \"2s\"\n",
        common::test_engine_toml_without_timeouts()
    );
    std::fs::write(&path, text).expect("write engine.toml");
    path
}

/// A `lookout` process whose first line of output (where it listens, who it is) was read.
struct Process {
    child: Child,
    first_line: String,
}

impl Process {
    fn start(args: &[&str]) -> Process {
        let (child, first_line) = common::spawn_reading_first_line(
            Command::new(env!("CARGO_BIN_EXE_lookout"))
                .args(args)
                .env("LOOKOUT_TOKEN", TOKEN)
                .stderr(Stdio::inherit()),
            Duration::from_secs(30),
        );
        Process { child, first_line }
    }

    /// `lookout worker` on `url`, with short leases and polls.
    fn worker(url: &str, engine: &Path) -> Process {
        Process::start(&[
            "worker",
            "--database",
            url,
            "--config",
            engine.to_str().expect("UTF-8 path"),
            "--lease",
            "3s",
            "--poll",
            "100ms",
            "--grace",
            "3s",
        ])
    }

    /// The claim owner a worker announces (`lookout worker: OWNER delivering from …`).
    fn owner(&self) -> String {
        self.first_line
            .strip_prefix("lookout worker: ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no owner in `{}`", self.first_line))
            .to_owned()
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM; true when it exited successfully within 20 s.
    fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

/// CPU time a process has used so far, from /proc (Linux, 100 ticks a second).
fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (in parentheses, which may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10)
}

fn numbered_event(seq: usize) -> String {
    let mut event: Value = serde_json::from_str(lookout::samples::ALL[0].1).unwrap();
    event["attributes"]["title"] = Value::from(format!("scale test #{seq}"));
    event.to_string()
}

/// Product `p1` with one signed webhook pointed at `url`, in a lane wide enough for
/// every worker's slots.
async fn configure(store: &dyn Store, url: &str) {
    let options = json!({"urls": [url], "secret": SIGNING_SECRET, "concurrency": 64});
    store
        .put_instance(
            "p1",
            &StoredInstance {
                name: "hook".to_owned(),
                service: "webhook".to_owned(),
                options: options.as_object().cloned().unwrap_or_default(),
            },
        )
        .await
        .unwrap();
}

/// Accepts `count` events for `p1`, one delivery each (`msg_scale_N`) routed as the
/// intake routes them, from 16 tasks at once, the way many intake requests would.
async fn accept_many(store: &Arc<dyn Store>, count: usize) {
    let routes = RouteCache::new(lookout::Settings::default())
        .routes(store.as_ref(), "p1")
        .await
        .expect("read p1")
        .expect("p1 is configured");
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let (store, routes) = (store.clone(), routes.clone());
        tasks.spawn(async move {
            let hook = routes.route("hook").expect("p1's hook");
            for seq in (task..count).step_by(16) {
                let payload = numbered_event(seq);
                let parsed = lookout::Event::parse(&payload).expect("a sample event");
                let event = NewEvent {
                    id: format!("evt_scale_{seq}"),
                    product: "p1".to_owned(),
                    received_at: store::now_ms(),
                    deliveries: vec![hook.delivery("p1", &parsed, format!("msg_scale_{seq}"))],
                    payload,
                    idempotency: None,
                    routed_with: None,
                    trace_context: None,
                };
                store.accept(&event).await.expect("accept");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("accepting task");
    }
}

fn delivered(stats: &store::Stats) -> u64 {
    stats
        .by_status
        .iter()
        .find(|(status, _)| *status == Status::Delivered)
        .map_or(0, |(_, n)| *n)
}

/// Polls the store until `count` deliveries are delivered and nothing is queued.
async fn wait_until_all_delivered(store: &dyn Store, count: usize, timeout: Duration) {
    let started = Instant::now();
    loop {
        let stats = store.stats().await.expect("stats");
        if delivered(&stats) == count as u64 && stats.queue_depth == 0 {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "after {timeout:?}: {} of {count} delivered, {} still queued",
            delivered(&stats),
            stats.queue_depth
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_one_killed_every_delivery_done() {
    let count = setting("LOOKOUT_SCALE_DELIVERIES", 10_000);
    let workers = setting("LOOKOUT_SCALE_WORKERS", 4).max(1);
    // 0 measures throughput alone (with one worker there is no one left to take over).
    let kills = setting("LOOKOUT_SCALE_KILLS", 1).min(workers - 1).min(1);
    let _alone = ONE_AT_A_TIME.lock().await;
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_toml(dir.path());
    let target = CaptureServer::start();
    // A slow target (its answer takes this long) shows the other limit: concurrency.
    let delay = setting("LOOKOUT_SCALE_TARGET_DELAY_MS", 0);
    if delay > 0 {
        let slow = Reply::ok().delay(Duration::from_millis(delay as u64));
        target.script("/hook", [slow]);
    }
    // Named apart from the workers' connections, whose CPU is measured.
    let store = store::open(&format!("{}&application_name=scale-test", schema.url))
        .await
        .expect("open PostgreSQL");
    configure(store.as_ref(), &format!("{}/hook", target.url())).await;

    let loading = Instant::now();
    accept_many(&store, count).await;
    let loaded_in = loading.elapsed();

    let started = Instant::now();
    let mut running: Vec<Process> = (0..workers)
        .map(|_| Process::worker(&schema.url, &engine))
        .collect();

    // Kill one worker once about a third has gone out, with attempts in flight.
    let kill_at = count / 3;
    let mut orphaned: i64 = 0;
    let db = schema.connect().await;
    if kills > 0 {
        while target.count() < kill_at {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "only {} of {count} requests after 120 s",
                target.count()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut victim = running.remove(1);
        victim.kill();
        orphaned = db
            .query_one(
                "SELECT COUNT(*) FROM deliveries WHERE lease_owner = $1",
                &[&victim.owner()],
            )
            .await
            .unwrap()
            .get(0);
    }

    wait_until_all_delivered(store.as_ref(), count, Duration::from_secs(300)).await;
    let drained_in = started.elapsed();
    // Where the CPU went (Linux; the cluster runs on this machine): the workers, and
    // the PostgreSQL backends serving their connections (the killed one's are gone).
    let workers_cpu: u64 = running.iter().filter_map(|w| cpu_ms(w.child.id())).sum();
    let backends: Vec<i32> = db
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'lookout'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let backends_cpu: u64 = backends
        .iter()
        .filter_map(|pid| cpu_ms(u32::try_from(*pid).ok()?))
        .sum();
    for worker in &mut running {
        assert!(worker.terminate(), "a worker did not stop on SIGTERM");
    }

    // What arrived: every delivery id, some twice.
    let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
    for request in target.requests() {
        let id = request.header("webhook-id").unwrap_or_default().to_owned();
        *arrivals.entry(id).or_default() += 1;
    }
    let expected: BTreeSet<String> = (0..count).map(|n| format!("msg_scale_{n}")).collect();
    let arrived: BTreeSet<String> = arrivals.keys().cloned().collect();
    let missing: Vec<&String> = expected.difference(&arrived).take(5).collect();
    let unknown: Vec<&String> = arrived.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "missing {missing:?}, unknown {unknown:?}"
    );
    let twice: BTreeSet<String> = arrivals
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id.clone())
        .collect();
    let taken_over: BTreeSet<String> = db
        .query("SELECT id FROM deliveries WHERE lease_expiries > 0", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let unexplained: Vec<&String> = twice.difference(&taken_over).take(5).collect();
    assert!(
        unexplained.is_empty(),
        "sent twice without an expired lease: {unexplained:?}"
    );
    let extra: usize = arrivals.values().map(|n| n - 1).sum();
    let attempts: i64 = db
        .query_one("SELECT COUNT(*) FROM attempts", &[])
        .await
        .unwrap()
        .get(0);

    let rate = count as f64 / drained_in.as_secs_f64();
    println!(
        "scale: {count} deliveries, {workers} workers, {kills} killed (SIGKILL after \
         {kill_at} requests, holding {orphaned} leases); {} duplicate deliveries ({extra} extra \
         requests), {} lease expiries taken over, {attempts} attempts recorded; loaded in \
         {:.1}s, delivered in {:.1}s = {rate:.0} deliveries/s; CPU of the {} live \
         workers {workers_cpu} ms, of their {} PostgreSQL backends {backends_cpu} ms",
        twice.len(),
        taken_over.len(),
        loaded_in.as_secs_f64(),
        drained_in.as_secs_f64(),
        running.len(),
        backends.len(),
    );
    drop((db, store));
    schema.drop_schema().await;
}

/// Intake and delivery in separate processes: `serve --no-workers` only stores, two
/// `lookout worker`s send; the operator commands work on the shared database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_only_serve_and_separate_workers() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_toml(dir.path());
    let target = CaptureServer::start();
    let url = schema.url.as_str();
    let cli = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lookout"));
        common::stdout_of(command.args(args).args(["--database", url]))
    };
    cli(&[
        "products",
        "add",
        "p1",
        "hook",
        "--service",
        "webhook",
        "--set",
        &format!("urls={}/hook", target.url()),
        "--set",
        &format!("secret={SIGNING_SECRET}"),
    ]);
    let intake = Process::start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database",
        url,
        "--no-workers",
    ]);
    let base = intake
        .first_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("serve prints its URL")
        .to_owned();

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut accepted = BTreeSet::new();
    for seq in 0..30 {
        let answer = http
            .post(format!("{base}/v1/products/p1/events"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(numbered_event(seq))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
        let body: Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
        accepted.insert(body["deliveries"][0]["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(target.count(), 0, "serve --no-workers sends nothing");

    let _workers = [Process::worker(url, &engine), Process::worker(url, &engine)];
    let arrived = target.wait_for(30, Duration::from_secs(30));
    let ids: Vec<String> = arrived
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        ids.iter().cloned().collect::<BTreeSet<_>>(),
        accepted,
        "every accepted event, from the workers"
    );
    let store = store::open(url).await.unwrap();
    wait_until_all_delivered(store.as_ref(), 30, Duration::from_secs(30)).await;
    assert_eq!(target.count(), 30, "nothing twice: no worker died");

    let stats: Value = serde_json::from_str(&cli(&["stats", "--json"])).unwrap();
    assert_eq!(stats["events"], 30, "{stats}");
    let listed: Value = serde_json::from_str(&cli(&["deliveries", "list", "--json"])).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(30));
    drop(store);
    schema.drop_schema().await;
}

/// Accepts one event of `p1` per payload, each with a delivery of its configured
/// service `service` routed as the intake routes it (lane, order key), ids `msg_N`.
async fn accept_routed(store: &dyn Store, service: &str, payloads: &[String]) {
    let routes = RouteCache::new(lookout::Settings::default())
        .routes(store, "p1")
        .await
        .expect("read p1")
        .expect("p1 is configured");
    let route = routes.route(service).expect("p1's service");
    let events: Vec<NewEvent> = payloads
        .iter()
        .enumerate()
        .map(|(n, payload)| {
            let parsed = lookout::Event::parse(payload).expect("a sample event");
            NewEvent {
                id: format!("evt_{n}"),
                product: "p1".to_owned(),
                received_at: store::now_ms(),
                deliveries: vec![route.delivery("p1", &parsed, format!("msg_{n}"))],
                payload: payload.clone(),
                idempotency: None,
                routed_with: None,
                trace_context: None,
            }
        })
        .collect();
    store.accept_batch(&events).await.expect("accept");
}

/// Two `lookout worker` processes sending to one Slack hook (a second per message,
/// bursts of 3) keep that pace together, not each: the destination's schedule is in the
/// database, moved in each claim's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_together_keep_one_destinations_pace() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = dir.path().join("paced.toml");
    let toml = "[engine]\nloopback_only = true\nrequest_timeout = \"1s\"\ndeadline = \"2s\"\n";
    std::fs::write(&engine, toml).unwrap();
    let slack = CaptureServer::start();
    let store = store::open(&schema.url).await.expect("open PostgreSQL");
    let hook = json!({"url": format!("{}/services/T0/B0/KEY", slack.url())});
    let chat = StoredInstance {
        name: "chat".to_owned(),
        service: "slack".to_owned(),
        options: hook.as_object().cloned().unwrap_or_default(),
    };
    store.put_instance("p1", &chat).await.unwrap();
    let events: Vec<String> = (0..9).map(numbered_event).collect();
    accept_routed(store.as_ref(), "chat", &events).await;

    let workers = [
        Process::worker(&schema.url, &engine),
        Process::worker(&schema.url, &engine),
    ];
    let arrived = slack.wait_for(9, Duration::from_secs(30));
    assert_eq!(arrived.len(), 9, "every message arrived");
    let times: Vec<Instant> = arrived.iter().map(|r| r.at).collect();
    let second = Duration::from_secs(1);
    if let Err(early) = common::keeps_pace(&times, second, 3, Duration::from_millis(100)) {
        panic!("two workers sent faster than the hook's pace: {early}");
    }
    let spread = times[8].duration_since(times[0]);
    println!("scale: 9 messages to one paced hook from 2 workers over {spread:?}");
    wait_until_all_delivered(store.as_ref(), 9, Duration::from_secs(10)).await;
    drop((workers, store));
    schema.drop_schema().await;
}

/// With `order_by`, each key's deliveries reach the target in intake order while a
/// worker is killed (SIGKILL) every second and another started: a delivery taken over
/// after a lost lease may arrive twice, but only as the latest of its key, never after a
/// later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_keys_keep_their_order_while_workers_are_killed() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let schema = TestSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_toml(dir.path());
    let target = CaptureServer::start();
    // Slow enough that a killed worker leaves attempts half done, and that the run
    // takes several seconds, one kill a second.
    target.script("/ordered", [Reply::ok().delay(Duration::from_millis(150))]);
    let store = store::open(&schema.url).await.expect("open PostgreSQL");
    let options = json!({
        "urls": [format!("{}/ordered", target.url())],
        "order_by": "attributes.title",
        "concurrency": 32,
    });
    let hook = StoredInstance {
        name: "hook".to_owned(),
        service: "webhook".to_owned(),
        options: options.as_object().cloned().unwrap_or_default(),
    };
    store.put_instance("p1", &hook).await.unwrap();
    let (keys, count) = (20, 600);
    let events: Vec<String> = (0..count)
        .map(|seq| {
            let mut event: Value = serde_json::from_str(&numbered_event(seq)).unwrap();
            event["attributes"]["title"] = Value::from(format!("key {}", seq % keys));
            event["attributes"]["number"] = Value::from(seq);
            event.to_string()
        })
        .collect();
    accept_routed(store.as_ref(), "hook", &events).await;

    let started = Instant::now();
    let mut running: Vec<Process> = (0..3)
        .map(|_| Process::worker(&schema.url, &engine))
        .collect();
    let mut kills = 0;
    let mut last_kill = Instant::now();
    loop {
        let stats = store.stats().await.expect("stats");
        if delivered(&stats) == count as u64 && stats.queue_depth == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} of {count} delivered after 120 s",
            delivered(&stats)
        );
        if last_kill.elapsed() >= Duration::from_secs(1) && kills < 30 {
            let mut victim = running.remove(kills % running.len());
            victim.kill();
            running.push(Process::worker(&schema.url, &engine));
            kills += 1;
            last_kill = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for worker in &mut running {
        assert!(worker.terminate(), "a worker did not stop on SIGTERM");
    }
    let mut by_key: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    // `count` and `keys` are small: the numbers fit.
    for request in target.requests() {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let seq = body["attributes"]["number"].as_u64().unwrap();
        by_key.entry(seq % keys as u64).or_default().push(seq);
    }
    let mut twice = 0;
    for (key, arrivals) in &by_key {
        for pair in arrivals.windows(2) {
            assert!(
                pair[0] <= pair[1],
                "key {key} went back from #{} to #{}: {arrivals:?}",
                pair[0],
                pair[1]
            );
            twice += usize::from(pair[0] == pair[1]);
        }
        let distinct: BTreeSet<u64> = arrivals.iter().copied().collect();
        assert_eq!(distinct.len(), count / keys, "key {key}");
    }
    println!(
        "scale: {count} ordered deliveries over {keys} keys, {kills} workers killed: every key \
         in order, {twice} sent twice (the latest of its key again), in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(store);
    schema.drop_schema().await;
}

#[test]
fn worker_needs_a_shared_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["worker", "--database"])
        .arg(dir.path().join("lookout.db"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("postgres://"), "{stderr}");
}

#[test]
fn a_lease_shorter_than_the_deadline_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_toml(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["worker", "--database", "postgres://lookout@127.0.0.1:9/x"])
        .args(["--config", engine.to_str().unwrap(), "--lease", "1s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("longer than the engine deadline"),
        "{stderr}"
    );
}
