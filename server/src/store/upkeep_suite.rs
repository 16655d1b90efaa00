//! The [`Upkeep`] tests every store must pass (health, alerts, retention), run by each
//! implementation with [`upkeep_suite!`](crate::store::upkeep_suite::upkeep_suite).

use std::time::Duration;

use serde_json::json;

use super::suite::{self, LEASE, T0};
use super::upkeep::{
    AlertSlot, DisableRule, ForgetRule, InstanceKey, PruneRule, Removed, TargetResult,
};
use super::{DisabledTarget, Finish, Lease, Millis, Status, Store, StoredInstance};

macro_rules! upkeep_suite {
    (open: $open:expr, close: $close:expr) => {
        $crate::store::upkeep_suite::upkeep_suite!(@each $open, $close;
            targets_failing_over_the_window_are_disabled,
            an_answer_recorded_with_its_outcome_starts_the_target_over,
            enabling_a_target_redelivers_its_dead_deliveries,
            alerts_are_named_and_rate_limited,
            prune_removes_finished_history_only,
            forget_erases_what_it_names,
        );
    };
    (@each $open:expr, $close:expr; $($name:ident),* $(,)?) => {
        $crate::store::suite::suite_tests!(upkeep_suite, $open, $close; $($name),*);
    };
}
pub(crate) use upkeep_suite;

const MINUTE: Millis = 60_000;

/// The configured service whose targets these tests disable.
const HOOK: InstanceKey<'static> = InstanceKey {
    product: "p1",
    instance: "hook",
};

/// The `hook` instance every product here has.
fn hook() -> StoredInstance {
    suite::hook("hook", "http://127.0.0.1:9/a")
}

/// Accepts an event of `product` (one `hook` instance) with one delivery `msg_<id>`.
async fn accept(store: &dyn Store, product: &str, id: &str, payload: serde_json::Value) {
    store.put_instance(product, &hook()).await.unwrap();
    let delivery = format!("msg_{id}");
    suite::accept_event(store, product, id, &payload.to_string(), &[&delivery]).await;
}

/// Claims everything due and finishes `id` with `status` and one attempt.
async fn end(store: &dyn Store, id: &str, status: Status) {
    let rule = DisableRule::default();
    end_with_health(store, id, status, Vec::new(), T0, &rule).await;
}

/// [`end`] at `now`, with how each target fared, counted under `rule`: the targets
/// that disabled.
async fn end_with_health(
    store: &dyn Store,
    id: &str,
    status: Status,
    health: Vec<TargetResult>,
    now: Millis,
    rule: &DisableRule,
) -> Vec<DisabledTarget> {
    store.claim(Lease::new("w1", T0, LEASE), 100).await.unwrap();
    let finish = Finish {
        health,
        ..suite::finished(status, 1)
    };
    let batch = [(format!("msg_{id}"), finish)];
    let disabled = store.finish_batch("w1", &batch, now, rule).await.unwrap();
    store.release("w1").await.unwrap();
    disabled.into_iter().map(|d| d.target).collect()
}

/// One attempt of a new event `id` of `p1` whose targets fared as `results`, recorded
/// at `now` under `rule`: the targets that disabled.
async fn attempted(
    store: &dyn Store,
    id: &str,
    results: &[TargetResult],
    now: Millis,
    rule: &DisableRule,
) -> Vec<DisabledTarget> {
    accept(store, "p1", id, json!({})).await;
    let status = if results.iter().all(|r| r.failure.is_none()) {
        Status::Delivered
    } else {
        Status::Failed
    };
    end_with_health(store, id, status, results.to_vec(), now, rule).await
}

fn result(key: &str, failure: Option<&str>) -> TargetResult {
    TargetResult {
        key: key.to_owned(),
        target: "http://127.0.0.1:9/[redacted]".to_owned(),
        failure: failure.map(str::to_owned),
    }
}

pub async fn targets_failing_over_the_window_are_disabled(store: &dyn Store) {
    store.put_instance("p1", &hook()).await.unwrap();
    let rule = DisableRule {
        failures: 3,
        over: Duration::from_secs(3600),
    };
    let fail = [result("k1", Some("HTTP 503"))];
    for minutes in [0, 10, 20] {
        let now = T0 + minutes * MINUTE;
        let disabled = attempted(store, &format!("a{minutes}"), &fail, now, &rule).await;
        assert!(disabled.is_empty(), "20 minutes are not an hour");
    }
    // A success in between starts another target over.
    for (n, failure) in [Some("timeout"), Some("timeout"), None, Some("timeout")]
        .into_iter()
        .enumerate()
    {
        let other = [result("k2", failure)];
        attempted(store, &format!("b{n}"), &other, T0 + 70 * MINUTE, &rule).await;
    }
    let disabled = attempted(store, "c", &fail, T0 + 61 * MINUTE, &rule).await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].key, "k1");
    assert!(
        disabled[0]
            .reason
            .starts_with("failed 4 attempts in a row over 1h"),
        "{}",
        disabled[0].reason
    );
    assert!(disabled[0].reason.contains("HTTP 503"));
    let product = store.product("p1").await.unwrap().unwrap();
    let keys: Vec<&str> = product.disabled.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["k1"], "k2 succeeded once: not disabled");
}

/// A target's health is recorded with each attempt's outcome: an answer starts its
/// failures in a row over.
pub async fn an_answer_recorded_with_its_outcome_starts_the_target_over(store: &dyn Store) {
    let rule = DisableRule {
        failures: 3,
        over: Duration::ZERO,
    };
    let fail = [result("k1", Some("HTTP 503"))];
    let mut n = 0;
    let mut failing = async || {
        n += 1;
        attempted(store, &format!("f{n}"), &fail, T0, &rule)
            .await
            .len()
    };
    assert_eq!((failing().await, failing().await), (0, 0));
    let answered = [result("k1", None), result("k2", None)];
    attempted(store, "e1", &answered, T0, &rule).await;
    assert_eq!((failing().await, failing().await), (0, 0), "started over");
    assert_eq!(failing().await, 1, "the third failure in a row disables it");
}

pub async fn enabling_a_target_redelivers_its_dead_deliveries(store: &dyn Store) {
    accept(store, "p1", "e1", json!({"model": "Item"})).await;
    accept(store, "p1", "e2", json!({"model": "Item"})).await;
    end(store, "e1", Status::Dead).await;
    end(store, "e2", Status::Delivered).await;
    let rule = DisableRule {
        failures: 1,
        over: Duration::ZERO,
    };
    let fail = [result("k1", Some("HTTP 503"))];
    let disabled = end_with_health(store, "e1", Status::Dead, fail.to_vec(), T0, &rule).await;
    assert_eq!(disabled.len(), 1);

    let without = store.enable_targets(HOOK, None).await.unwrap();
    assert_eq!((without.targets, without.redelivered), (1, 0));
    accept(store, "p1", "e3", json!({"model": "Item"})).await;
    let disabled = end_with_health(store, "e3", Status::Delivered, fail.to_vec(), T0, &rule).await;
    assert_eq!(disabled.len(), 1);
    let enabled = store.enable_targets(HOOK, Some(T0 + 5)).await.unwrap();
    assert_eq!((enabled.targets, enabled.redelivered), (1, 1));
    assert!(suite::disabled_targets_of(store, "p1").await.is_empty());
    let claimed = store
        .claim(Lease::new("w2", T0 + 5, LEASE), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["msg_e1"],
        "the dead one is due again, the delivered one is not"
    );
}

pub async fn alerts_are_named_and_rate_limited(store: &dyn Store) {
    assert!(!store.set_alerts("nope", Some("ops")).await.unwrap());
    store.put_instance("p1", &hook()).await.unwrap();
    assert!(store.set_alerts("p1", Some("ops")).await.unwrap());
    let product = store.product("p1").await.unwrap().unwrap();
    assert_eq!(product.alerts.as_deref(), Some("ops"));
    assert_eq!(product.to_redacted_json()["alerts"], "ops");
    let hour = Duration::from_secs(3600);
    let slot = |key: &'static str, at: Millis| {
        let slot = AlertSlot {
            product: "p1",
            instance: "hook",
            key,
            every: hour,
        };
        store.take_alert_slot(slot, at)
    };
    assert!(slot("k1", T0).await.unwrap());
    assert!(!slot("k1", T0 + 30 * MINUTE).await.unwrap(), "once an hour");
    assert!(slot("k2", T0 + 30 * MINUTE).await.unwrap(), "per target");
    assert!(slot("k1", T0 + 60 * MINUTE).await.unwrap());
    store.set_alerts("p1", None).await.unwrap();
    assert_eq!(store.product("p1").await.unwrap().unwrap().alerts, None);
}

pub async fn prune_removes_finished_history_only(store: &dyn Store) {
    for id in ["delivered", "skipped", "dead", "pending"] {
        accept(store, "p1", id, json!({"model": "Item"})).await;
    }
    end(store, "delivered", Status::Delivered).await;
    end(store, "skipped", Status::Skipped).await;
    end(store, "dead", Status::Dead).await;
    let too_early = PruneRule {
        before: T0,
        dead_before: None,
    };
    assert_eq!(
        store.prune(&too_early, 100).await.unwrap(),
        Removed::default()
    );
    let rule = PruneRule {
        before: T0 + 1,
        dead_before: None,
    };
    let first = store.prune(&rule, 1).await.unwrap();
    assert_eq!(
        (first.events, first.deliveries, first.attempts),
        (1, 1, 1),
        "a batch of one"
    );
    let rest = store.prune(&rule, 100).await.unwrap();
    assert_eq!((rest.events, rest.deliveries, rest.attempts), (1, 1, 1));
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.events, 2, "the dead and the pending one stay");
    let with_dead = PruneRule {
        before: T0 + 1,
        dead_before: Some(crate::store::now_ms() + 1),
    };
    let dead = store.prune(&with_dead, 100).await.unwrap();
    assert_eq!(dead.events, 1);
    assert!(store.delivery("msg_pending").await.unwrap().is_some());
    assert!(store.delivery("msg_dead").await.unwrap().is_none());
}

pub async fn forget_erases_what_it_names(store: &dyn Store) {
    let by = |id: u64| json!({"model": "Item", "attributes": {"created_by": {"id": id}}});
    accept(store, "p1", "a", by(1111)).await;
    accept(store, "p1", "b", by(2222)).await;
    accept(store, "p2", "c", by(1111)).await;
    accept(
        store,
        "p2",
        "d",
        json!({"model": "Item", "attributes": {"created_by": {"id": "1111"}}}),
    )
    .await;
    end(store, "a", Status::Delivered).await;
    let field = ForgetRule::parse_where("attributes.created_by.id=1111").unwrap();
    let rule = ForgetRule {
        product: Some("p1".to_owned()),
        field: Some(field.clone()),
    };
    let removed = store.forget(&rule, 100).await.unwrap();
    assert_eq!(
        (removed.events, removed.deliveries, removed.attempts),
        (1, 1, 1)
    );
    let everywhere = ForgetRule {
        product: None,
        field: Some(field),
    };
    let removed = store.forget(&everywhere, 100).await.unwrap();
    assert_eq!(removed.events, 2, "a number and a string with that text");
    assert!(store.delivery("msg_b").await.unwrap().is_some());
    let product = ForgetRule {
        product: Some("p1".to_owned()),
        field: None,
    };
    assert_eq!(store.forget(&product, 100).await.unwrap().events, 1);
    assert_eq!(store.stats().await.unwrap().events, 0);
}
