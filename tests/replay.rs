//! `lookout replay`: stored events through a new config, compared with what the stored
//! services send, on a SQLite store (the store's own methods are tested on both
//! databases by the store suite). Nothing here is sent anywhere: no worker runs.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout::config::ConfigFile;
use lookout_server::replay::{self, Budget, Change, Replay, ReplayReport};
use lookout_server::store::{self, NewDelivery, NewEvent, Store, instances_from_table};
use serde_json::json;
// Links every service into the test binary.
use services as _;

const SLACK_SECRET: &str = "T0SECRET/B0SECRET/hunter2hunter2";

fn stored_services() -> serde_json::Value {
    json!({
        "slack": {"url": format!("https://hooks.slack.com/services/{SLACK_SECRET}"), "channel": "#dev"},
        "team": {"service": "discord", "url": "https://discord.com/api/webhooks/1/discordsecret"},
    })
}

/// A SQLite store with product `p1` (slack and discord) and one stored event per sample
/// model, each with a delivery per service, received a minute ago.
async fn history(dir: &tempfile::TempDir) -> (String, Arc<dyn Store>) {
    let path = dir.path().join("lookout.db").display().to_string();
    let store = store::open(&path).await.unwrap();
    let table = stored_services();
    let instances = instances_from_table(table.as_object().unwrap()).unwrap();
    store.put_product("p1", &instances).await.unwrap();
    let received_at = store::now_ms() - 60_000;
    for (i, (model, payload)) in lookout::samples::ALL.iter().enumerate() {
        store
            .accept(&NewEvent {
                id: format!("evt_{i}_{model}"),
                product: "p1".into(),
                payload: (*payload).into(),
                received_at: received_at + i as i64,
                idempotency: None,
                routed_with: None,
                trace_context: None,
                deliveries: [("slack", "slack"), ("team", "discord")]
                    .iter()
                    .map(|(instance, service)| {
                        let id = format!("msg_{i}_{instance}");
                        NewDelivery::in_own_lane("p1", &id, instance, service)
                    })
                    .collect(),
            })
            .await
            .unwrap();
    }
    (path, store)
}

fn config(services: serde_json::Value) -> ConfigFile {
    let text = json!({ "services": services }).to_string();
    ConfigFile::parse(&text, "new.json", &[]).unwrap()
}

async fn compare(store: &dyn Store, file: &ConfigFile) -> ReplayReport {
    compare_newest(store, file, None).await
}

async fn compare_newest(
    store: &dyn Store,
    file: &ConfigFile,
    limit: Option<usize>,
) -> ReplayReport {
    let replay = Replay {
        services: &file.services,
        since: store::now_ms() - 3_600_000,
        product: Some("p1".into()),
        service: None,
        limit,
        budget: None,
    };
    replay::compare(store, &replay).await.unwrap()
}

/// The changed lines of a diff, without its headers.
fn changed_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| (l.starts_with('-') || l.starts_with('+')) && !l.starts_with("---"))
        .filter(|l| !l.starts_with("+++"))
        .collect()
}

#[tokio::test]
async fn an_unchanged_config_shows_no_differences() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = history(&dir).await;
    let report = compare(store.as_ref(), &config(stored_services())).await;
    let summary = &report.summary;
    assert_eq!(summary.events, 5);
    assert_eq!(summary.services, 2);
    assert_eq!(
        (summary.changed, summary.new, summary.removed),
        (0, 0, 0),
        "{summary:?}"
    );
    // Slack and Discord both announce the five created samples.
    assert_eq!(summary.unchanged, 10, "{summary:?}");
    assert!(report.comparisons.iter().all(|c| c.diff.is_empty()));
    // The stored delivery's id is used on both sides.
    assert_eq!(report.comparisons[0].delivery_id, "msg_0_slack");
}

#[tokio::test]
async fn a_limit_compares_the_newest_events_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = history(&dir).await;
    let file = config(stored_services());
    let newest = compare_newest(store.as_ref(), &file, Some(2)).await;
    assert_eq!(newest.summary.events, 2);
    assert!(newest.cut, "three older events were left out");
    let events: Vec<&str> = newest
        .comparisons
        .iter()
        .map(|c| c.event_id.as_str())
        .collect();
    assert_eq!(
        events,
        [
            "evt_3_Favorite",
            "evt_3_Favorite",
            "evt_4_Deploy",
            "evt_4_Deploy"
        ]
    );
    let all = compare_newest(store.as_ref(), &file, Some(5)).await;
    assert_eq!((all.summary.events, all.cut), (5, false));
}

/// A replay of `file` over p1's history under `budget`.
async fn compare_within(store: &dyn Store, file: &ConfigFile, budget: Budget) -> ReplayReport {
    let replay = Replay {
        services: &file.services,
        since: store::now_ms() - 3_600_000,
        product: Some("p1".into()),
        service: None,
        limit: Some(200),
        budget: Some(budget),
    };
    replay::compare(store, &replay).await.unwrap()
}

fn budget(comparisons: usize, diff_bytes: usize) -> Budget {
    Budget {
        comparisons,
        deadline: Instant::now() + Duration::from_secs(60),
        cancelled: Arc::default(),
        diff_bytes,
        holding: None,
    }
}

#[tokio::test]
async fn a_budget_bounds_the_comparisons_the_diffs_and_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = history(&dir).await;
    let mut services = stored_services();
    services["slack"]["channel"] = "#ops".into();
    services["team"]["username"] = "Lookout".into();
    let file = config(services);

    // 6 comparisons for 2 services: the newest 3 events, shown oldest first.
    let report = compare_within(store.as_ref(), &file, budget(6, 1 << 20)).await;
    assert_eq!(
        (report.summary.events, report.event_limit, report.cut),
        (3, Some(3), true)
    );
    assert_eq!(report.comparisons[0].event_id, "evt_2_Block");
    assert_eq!(report.comparisons.last().unwrap().event_id, "evt_4_Deploy");
    // Only the diffs are kept, not both sides' requests.
    assert!(report.comparisons.iter().all(|c| c.stored.is_none()));
    assert!(
        report
            .comparisons
            .iter()
            .all(|c| c.config.requests.is_empty())
    );
    assert!(report.comparisons.iter().all(|c| !c.diff.is_empty()));

    // Room for one diff: the rest are counted without theirs.
    let one = report.comparisons[0].diff.len();
    let report = compare_within(store.as_ref(), &file, budget(100, one)).await;
    let with_diff = report.comparisons.iter().filter(|c| !c.diff.is_empty());
    assert_eq!(with_diff.count(), 1);
    assert_eq!(report.diffs_left_out, report.comparisons.len() - 1);
    assert_eq!(
        report.summary.changed, 10,
        "every difference is still counted"
    );

    // Out of time (or left by its caller) before the first event: nothing compared.
    let mut spent = budget(100, 1 << 20);
    spent.deadline = Instant::now();
    let report = compare_within(store.as_ref(), &file, spent).await;
    assert!(report.stopped && report.cut, "{:?}", report.summary);
    assert_eq!(report.summary.events, 0);
    let left = budget(100, 1 << 20);
    left.cancelled
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let report = compare_within(store.as_ref(), &file, left).await;
    assert_eq!((report.stopped, report.summary.events), (true, 0));
}

#[tokio::test]
async fn a_changed_option_shows_exactly_the_changed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = history(&dir).await;
    let mut services = stored_services();
    services["slack"]["channel"] = "#ops".into();
    let report = compare(store.as_ref(), &config(services)).await;
    let summary = &report.summary;
    assert_eq!((summary.changed, summary.unchanged), (5, 5), "{summary:?}");
    for comparison in &report.comparisons {
        match comparison.instance.as_str() {
            "slack" => {
                assert_eq!(comparison.change, Change::Changed);
                assert_eq!(
                    changed_lines(&comparison.diff),
                    [
                        "-        \"channel\": \"#dev\"",
                        "+        \"channel\": \"#ops\""
                    ],
                    "{}",
                    comparison.diff
                );
                // The webhook's key is redacted on both sides.
                assert!(!comparison.diff.contains("hunter2"), "{}", comparison.diff);
            }
            _ => assert_eq!(comparison.change, Change::Unchanged),
        }
    }
}

#[tokio::test]
async fn a_template_new_service_and_narrower_events_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = history(&dir).await;
    let mut services = stored_services();
    services["team"]["template"] = json!({"title": "{{ actor }}: {{ item_label }}"});
    services["team"]["events"] = json!(["Item.*", "Comment.*", "Block.*", "Favorite.*"]);
    services["alerts"] =
        json!({"service": "discord", "url": "https://discord.com/api/webhooks/2/other"});
    let report = compare(store.as_ref(), &config(services)).await;
    let summary = &report.summary;
    assert_eq!(summary.services, 3);
    // Discord: four titles change, the deploy is no longer sent; alerts is new for all.
    assert_eq!(
        (
            summary.changed,
            summary.removed,
            summary.new,
            summary.unchanged
        ),
        (4, 1, 5, 5),
        "{summary:?}"
    );
    let item = report
        .comparisons
        .iter()
        .find(|c| c.instance == "team" && c.event == "Item.created")
        .unwrap();
    assert_eq!(changed_lines(&item.diff).len(), 2, "{}", item.diff);
    assert!(
        item.diff
            .contains("+            \"title\": \"Joe S.: \\\\#1212 \\\\- As a user"),
        "{}",
        item.diff
    );
}

#[tokio::test]
async fn sending_twice_sends_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store) = history(&dir).await;
    let mut services = stored_services();
    services["slack"]["channel"] = "#ops".into();
    let config_path = dir.path().join("new.json");
    std::fs::write(&config_path, json!({ "services": services }).to_string()).unwrap();
    let run = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args([
                "replay",
                "--since",
                "1h",
                "--product",
                "p1",
                "--database",
                &path,
            ])
            .arg("--config")
            .arg(&config_path)
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let preview = run(&[]);
    assert!(
        preview.contains("Item.created evt_0_Item (product p1) · slack: changed"),
        "{preview}"
    );
    assert!(
        preview.contains("+        \"channel\": \"#ops\"\n"),
        "{preview}"
    );
    assert!(
        preview.ends_with("5 events, 2 services: 5 changed, 5 unchanged, 0 new, 0 removed\n"),
        "{preview}"
    );
    assert!(!preview.contains("hunter2"), "{preview}");

    let first = run(&["--send"]);
    assert!(first.contains("stored in product p1: slack"), "{first}");
    assert!(
        first.ends_with("added 5 deliveries (0 were already there)\n"),
        "{first}"
    );
    let second = run(&["--send", "--json"]);
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["summary"]["changed"], 0, "{second}");
    assert_eq!(second["sent"]["added"], 0, "{second}");
    assert_eq!(second["sent"]["stored_services"], json!([]), "{second}");

    let deliveries = store
        .deliveries(&store::DeliveryFilter::default())
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 15, "10 stored and 5 replayed");
    let product = store.product("p1").await.unwrap().unwrap();
    let slack = product
        .instances
        .iter()
        .find(|i| i.name == "slack")
        .unwrap();
    assert_eq!(slack.options["channel"], "#ops");
}
