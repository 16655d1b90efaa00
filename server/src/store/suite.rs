//! The one test suite every [`Store`] implementation must pass. Each function takes a
//! fresh, empty store and panics on the first thing that is wrong; an implementation's
//! tests run all of them with [`store_suite!`](crate::store::suite::store_suite).
//!
//! The suite talks to the store only through the trait, and uses service names as plain
//! text (the store never looks a service up), so it needs no registered service.

use std::time::Duration;

use crate::lanes::Lane;
use serde_json::{Map, Value, json};

use super::{
    ActivityWindow, Admission, AttemptOutcome, AttemptRecord, ConsoleSession, DeliveryFilter,
    DisabledTarget, EventFilter, Finish, Lease, Millis, NewDelivery, NewEvent, PortalLink, Status,
    Store, StoredInstance,
};

/// Declares one `#[tokio::test]` per suite function. `$open` is an async expression
/// giving `(guard, store)`, a fresh empty store and whatever must live as long as it
/// (a temporary folder); `$close` is awaited with the guard after the test.
#[cfg(test)]
macro_rules! store_suite {
    (open: $open:expr, close: $close:expr) => {
        $crate::store::suite::store_suite!(@each $open, $close;
            products,
            accept_is_all_or_nothing,
            a_batch_is_one_transaction,
            events_routed_with_changed_services_are_not_stored,
            idempotency_keys_resolve_to_the_first_event,
            finish_batch_records_each_and_passes_over_unknown_ones,
            claim_hands_out_due_deliveries_once,
            the_trace_context_comes_with_the_claim,
            expired_leases_are_claimed_again,
            finish_schedules_retries_and_dead_letters,
            finish_by_a_stale_owner_keeps_the_state,
            disabled_targets,
            redeliver,
            release,
            listing_and_stats,
            concurrent_claims_never_overlap,
            tokens_are_kept_as_digests,
            console_sessions_end_expire_and_go_with_their_link,
            history_is_read_in_batches_and_added_to_once,
            console_pages_and_activity,
        );
    };
    (@each $open:expr, $close:expr; $($name:ident),* $(,)?) => {
        $crate::store::suite::suite_tests!(suite, $open, $close; $($name),*);
    };
}
#[cfg(test)]
pub(crate) use store_suite;

/// One `#[tokio::test]` per function `$name` of the suite module `crate::store::$suite`,
/// on a store from `$open`, closed with `$close` (see [`store_suite!`]).
#[cfg(test)]
macro_rules! suite_tests {
    ($suite:ident, $open:expr, $close:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (guard, store) = $open.await;
            $crate::store::$suite::$name(&store).await;
            drop(store);
            ($close)(guard).await;
        }
    )*};
}
#[cfg(test)]
pub(crate) use suite_tests;

pub(super) const LEASE: Duration = Duration::from_secs(30);
pub(super) const T0: Millis = 1_700_000_000_000;

fn options(url: &str) -> Map<String, Value> {
    json!({"urls": [url], "secret": "whsec_c2VjcmV0"})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

pub(super) fn hook(name: &str, url: &str) -> StoredInstance {
    StoredInstance {
        name: name.to_owned(),
        service: "webhook".to_owned(),
        options: options(url),
    }
}

/// Accepts an event for product `p1` (configured with one `hook` instance) with the
/// given delivery ids, received at `T0`.
pub async fn accept_one(store: &dyn Store, event: &str, deliveries: &[&str]) {
    let configured = store.product("p1").await.unwrap();
    if configured.is_none_or(|p| p.instances.iter().all(|i| i.name != "hook")) {
        put_instance(store, "p1", &hook("hook", "http://127.0.0.1:9/a")).await;
    }
    accept_event(store, "p1", event, r#"{"model":"Item"}"#, deliveries).await;
}

/// Accepts event `event` of `product`, received at `T0`, with deliveries of its `hook`
/// instance (which must be configured).
pub(super) async fn accept_event(
    store: &dyn Store,
    product: &str,
    event: &str,
    payload: &str,
    deliveries: &[&str],
) {
    store
        .accept(&NewEvent {
            id: event.to_owned(),
            product: product.to_owned(),
            payload: payload.to_owned(),
            received_at: T0,
            deliveries: deliveries.iter().map(|id| delivery(product, id)).collect(),
            idempotency: None,
            routed_with: None,
            trace_context: None,
        })
        .await
        .unwrap();
}

/// Whether `owner` finds nothing to claim at `now` (taking up to ten, for `lease`).
async fn nothing_due(store: &dyn Store, owner: &str, now: Millis, lease: Duration) -> bool {
    store
        .claim(Lease::new(owner, now, lease), 10)
        .await
        .unwrap()
        .is_empty()
}

/// The disabled targets of `product`, which must exist.
pub(super) async fn disabled_targets_of(store: &dyn Store, product: &str) -> Vec<DisabledTarget> {
    store.product(product).await.unwrap().unwrap().disabled
}

fn attempt(number: u32, outcome: AttemptOutcome, status: Option<u16>) -> AttemptRecord {
    AttemptRecord {
        number,
        at: T0,
        duration_ms: 12,
        target: Some("http://127.0.0.1:9/[redacted]".to_owned()),
        outcome,
        status,
        error: (outcome == AttemptOutcome::Failed)
            .then(|| "HTTP 500 Internal Server Error".to_owned()),
    }
}

/// A delivery of `product`'s `hook`, in the suite's lane: one lane for all of them,
/// with room for every delivery a test has in flight.
pub(super) fn delivery(product: &str, id: &str) -> NewDelivery {
    NewDelivery {
        lane: Lane {
            cap: 1_000,
            ..Lane::own(product, "hook")
        },
        ..NewDelivery::in_own_lane(product, id, "hook", "webhook")
    }
}

/// Records `finish` for delivery `id` as `owner` (its answer is not what is tested).
async fn finish(store: &dyn Store, id: &str, owner: &str, finish: &Finish) {
    store.finish(id, owner, finish).await.unwrap();
}

/// Stores `instance` as a service of `product`.
async fn put_instance(store: &dyn Store, product: &str, instance: &StoredInstance) {
    store.put_instance(product, instance).await.unwrap();
}

fn failed(step: u32, next_at: Millis, number: u32) -> Finish {
    Finish {
        status: Status::Failed,
        next_at: Some(next_at),
        step,
        done_targets: Vec::new(),
        last_error: Some("HTTP 500 Internal Server Error".to_owned()),
        attempts: vec![attempt(number, AttemptOutcome::Failed, Some(500))],
        ..finished(Status::Failed, number)
    }
}

pub(super) fn finished(status: Status, number: u32) -> Finish {
    Finish {
        done_targets: vec!["k1".to_owned()],
        attempts: vec![attempt(number, AttemptOutcome::Delivered, Some(200))],
        latency_ms: Some(12),
        ..Finish::to(status)
    }
}

pub async fn products(store: &dyn Store) {
    assert!(store.product("p1").await.unwrap().is_none());
    store
        .put_product(
            "p1",
            &[
                hook("a", "http://127.0.0.1:9/a"),
                hook("b", "http://x.test/b"),
            ],
        )
        .await
        .unwrap();
    let product = store.product("p1").await.unwrap().expect("stored");
    let names: Vec<&str> = product.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        product.instances[0].options,
        options("http://127.0.0.1:9/a")
    );

    // One instance replaced, one added, one removed.
    put_instance(store, "p1", &hook("a", "http://127.0.0.1:9/new")).await;
    put_instance(store, "p2", &hook("c", "http://127.0.0.1:9/c")).await;
    assert!(store.remove_instance("p1", "b").await.unwrap());
    assert!(!store.remove_instance("p1", "b").await.unwrap());
    let product = store.product("p1").await.unwrap().unwrap();
    assert_eq!(product.instances.len(), 1);
    assert_eq!(
        product.instances[0].options,
        options("http://127.0.0.1:9/new")
    );
    let all: Vec<String> = store
        .products()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(all, ["p1", "p2"]);

    // put_product replaces the whole list.
    store
        .put_product("p1", &[hook("z", "http://127.0.0.1:9/z")])
        .await
        .unwrap();
    let product = store.product("p1").await.unwrap().unwrap();
    assert_eq!(product.instances.len(), 1);
    assert_eq!(product.instances[0].name, "z");

    assert!(store.remove_product("p1").await.unwrap());
    assert!(!store.remove_product("p1").await.unwrap());
    assert!(store.product("p1").await.unwrap().is_none());
}

pub async fn accept_is_all_or_nothing(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1", "msg_2"]).await;
    // The second delivery's id is taken: the whole event must be refused, and nothing
    // of it stored.
    put_instance(store, "p1", &hook("hook", "http://127.0.0.1:9/a")).await;
    let clash = NewEvent {
        id: "evt_2".to_owned(),
        product: "p1".to_owned(),
        payload: "{}".to_owned(),
        received_at: T0,
        deliveries: vec![delivery("p1", "msg_3"), delivery("p1", "msg_1")],
        idempotency: None,
        routed_with: None,
        trace_context: None,
    };
    assert!(store.accept(&clash).await.is_err());
    assert!(store.delivery("msg_3").await.unwrap().is_none());
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.events, 1, "the refused event left nothing behind");
    assert_eq!(stats.queue_depth, 2);
    let (row, attempts) = store.delivery("msg_1").await.unwrap().unwrap();
    assert_eq!(row.status, Status::Pending);
    assert_eq!(row.event_id, "evt_1");
    assert_eq!(row.next_at, Some(T0));
    assert!(attempts.is_empty());
}

/// An event for `p1`'s `hook` with one delivery `msg`, and an idempotency key.
fn keyed(event: &str, msg: &str, payload: &str, key: Option<(&str, Millis)>) -> NewEvent {
    NewEvent {
        id: event.to_owned(),
        product: "p1".to_owned(),
        payload: payload.to_owned(),
        received_at: T0,
        deliveries: vec![delivery("p1", msg)],
        idempotency: key.map(|(key, since)| super::IdempotencyKey {
            key: key.to_owned(),
            digest: format!("digest of {payload}"),
            since,
        }),
        routed_with: None,
        trace_context: None,
    }
}

pub async fn a_batch_is_one_transaction(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1"]).await;
    let good = keyed("evt_2", "msg_2", "{}", None);
    let clash = keyed("evt_3", "msg_1", "{}", None);
    assert!(store.accept_batch(&[good.clone(), clash]).await.is_err());
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.events, 1, "nothing of a failed batch is stored");
    assert!(store.delivery("msg_2").await.unwrap().is_none());

    let admitted = store
        .accept_batch(&[good, keyed("evt_3", "msg_3", "{}", None)])
        .await
        .unwrap();
    assert_eq!(admitted, [Admission::Stored, Admission::Stored]);
    assert_eq!(store.stats().await.unwrap().queue_depth, 3);
}

/// Every change to a product's services moves the generation; an event routed with an
/// older one is refused unstored (the intake routes it again), the rest of its batch is
/// stored.
pub async fn events_routed_with_changed_services_are_not_stored(store: &dyn Store) {
    accept_one(store, "evt_0", &[]).await;
    let generation = || async { store.product("p1").await.unwrap().unwrap().generation };
    let first = generation().await;
    let routed = |event: &str, msg: &str, with: Millis| NewEvent {
        routed_with: Some(with),
        trace_context: None,
        ..keyed(event, msg, "{}", None)
    };
    assert_eq!(
        store
            .accept(&routed("evt_1", "msg_1", first))
            .await
            .unwrap(),
        Admission::Stored
    );
    // Storing events, claiming and finishing deliveries are not changes to the services.
    assert_eq!(generation().await, first);

    put_instance(store, "p1", &hook("hook", "http://127.0.0.1:9/b")).await;
    let second = generation().await;
    assert!(second > first, "changing a service: {first} → {second}");
    let admitted = store
        .accept_batch(&[
            routed("evt_2", "msg_2", first),
            routed("evt_3", "msg_3", second),
            keyed("evt_4", "msg_4", "{}", None),
        ])
        .await
        .unwrap();
    assert_eq!(
        admitted,
        [Admission::Rerouted, Admission::Stored, Admission::Stored]
    );
    assert!(store.delivery("msg_2").await.unwrap().is_none());
    assert!(store.event_payload("evt_2").await.unwrap().is_none());

    // Adding, removing a service and naming its alerts service each move it on.
    put_instance(store, "p1", &hook("other", "http://127.0.0.1:9/c")).await;
    let third = generation().await;
    assert!(third > second);
    assert!(store.remove_instance("p1", "other").await.unwrap());
    let fourth = generation().await;
    assert!(fourth > third);
    store.set_alerts("p1", Some("hook")).await.unwrap();
    let fifth = generation().await;
    assert!(fifth > fourth);

    // Another product's changes leave it alone: its events are not routed again.
    store.put_product("p2", &[]).await.unwrap();
    put_instance(store, "p2", &hook("hook", "http://127.0.0.1:9/d")).await;
    assert!(store.remove_product("p2").await.unwrap());
    assert_eq!(generation().await, fifth);
    assert_eq!(
        store
            .accept(&routed("evt_5", "msg_5", fifth))
            .await
            .unwrap(),
        Admission::Stored
    );
    // A product removed and made again never repeats a generation it had.
    store.put_product("p2", &[]).await.unwrap();
    let p2 = store.product("p2").await.unwrap().unwrap().generation;
    assert!(p2 > fifth, "{p2} after {fifth}");
}

pub async fn idempotency_keys_resolve_to_the_first_event(store: &dyn Store) {
    accept_one(store, "evt_0", &[]).await;
    let live = Some(("k1", T0 - 1_000));
    let first = keyed("evt_1", "msg_1", "A", live);
    let admitted = store
        .accept_batch(&[
            first.clone(),
            keyed("evt_2", "msg_2", "A", live),
            keyed("evt_3", "msg_3", "B", live),
        ])
        .await
        .unwrap();
    let repeated = Admission::Repeated {
        answer: first.answer(),
    };
    assert_eq!(
        admitted,
        [Admission::Stored, repeated.clone(), Admission::Conflict]
    );
    assert_eq!(
        store
            .accept(&keyed("evt_4", "msg_4", "A", live))
            .await
            .unwrap(),
        repeated
    );
    assert_eq!(store.stats().await.unwrap().queue_depth, 1, "one delivery");

    // Concurrent duplicates: one is stored, the other gets its answer.
    let (a, b) = (
        keyed("evt_5", "msg_5", "C", Some(("k2", T0 - 1_000))),
        keyed("evt_6", "msg_6", "C", Some(("k2", T0 - 1_000))),
    );
    let (a, b) = futures::join!(store.accept(&a), store.accept(&b));
    let mut both = [a.unwrap(), b.unwrap()];
    both.sort_by_key(|admission| admission == &Admission::Stored);
    assert!(
        matches!(both, [Admission::Repeated { .. }, Admission::Stored]),
        "{both:?}"
    );

    // Once the key has expired (recorded before `since`), it is used afresh.
    let later = keyed("evt_7", "msg_7", "B", Some(("k1", T0 + 1)));
    assert_eq!(store.accept(&later).await.unwrap(), Admission::Stored);
    assert_eq!(store.stats().await.unwrap().queue_depth, 3);
}

pub async fn finish_batch_records_each_and_passes_over_unknown_ones(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1", "msg_2"]).await;
    let leased = store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    assert_eq!(leased.len(), 2);
    store
        .finish_batch(
            "w1",
            &[
                ("msg_1".to_owned(), finished(Status::Delivered, 1)),
                ("msg_unknown".to_owned(), finished(Status::Delivered, 1)),
                ("msg_2".to_owned(), failed(1, T0 + 1_000, 1)),
            ],
            T0,
            &super::upkeep::DisableRule::default(),
        )
        .await
        .unwrap();
    let status = |id: &'static str| async move { store.delivery(id).await.unwrap().unwrap() };
    let (one, attempts) = status("msg_1").await;
    assert_eq!((one.status, attempts.len()), (Status::Delivered, 1));
    let (two, attempts) = status("msg_2").await;
    assert_eq!(
        (two.status, two.next_at, attempts.len()),
        (Status::Failed, Some(T0 + 1_000), 1)
    );
    assert!(
        store
            .claim(Lease::new("w2", T0, LEASE), 10)
            .await
            .unwrap()
            .is_empty(),
        "leases ended"
    );
}

/// The intake's `traceparent`, stored with an event, is what each of its deliveries'
/// attempts continues; an event stored without one has none.
pub async fn the_trace_context_comes_with_the_claim(store: &dyn Store) {
    accept_one(store, "evt_0", &["msg_0"]).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = NewEvent {
        trace_context: Some(traceparent.to_owned()),
        ..keyed("evt_1", "msg_1", r#"{"model":"Item"}"#, None)
    };
    let untraced = keyed("evt_2", "msg_2", r#"{"model":"Item"}"#, None);
    let admitted = store.accept_batch(&[traced, untraced]).await.unwrap();
    assert_eq!(admitted, [Admission::Stored, Admission::Stored]);
    let claimed = store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    let context = |id: &str| {
        let claim = claimed.iter().find(|c| c.id == id).expect("claimed");
        claim.trace_context.clone()
    };
    assert_eq!(context("msg_1").as_deref(), Some(traceparent));
    assert_eq!(context("msg_2"), None);
    assert_eq!(context("msg_0"), None);
}

pub async fn claim_hands_out_due_deliveries_once(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1", "msg_2", "msg_3"]).await;
    assert!(
        nothing_due(store, "w1", T0 - 1, LEASE).await,
        "nothing is due before it was received"
    );
    let first = store.claim(Lease::new("w1", T0, LEASE), 2).await.unwrap();
    assert_eq!(first.len(), 2, "the limit is respected");
    let second = store
        .claim(Lease::new("w2", T0 + 5, LEASE), 10)
        .await
        .unwrap();
    assert_eq!(
        second.len(),
        1,
        "leased deliveries are not handed out twice"
    );
    let mut ids: Vec<&str> = first.iter().chain(&second).map(|c| c.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["msg_1", "msg_2", "msg_3"]);

    let claimed = &second[0];
    assert_eq!(claimed.event_id, "evt_1");
    assert_eq!(claimed.product, "p1");
    assert_eq!(claimed.instance, "hook");
    assert_eq!(claimed.service, "webhook");
    assert_eq!(claimed.payload, r#"{"model":"Item"}"#);
    assert_eq!(claimed.attempts, 0);
    let generation = store.product("p1").await.unwrap().unwrap().generation;
    assert_eq!(claimed.generation, Some(generation));
    assert!(nothing_due(store, "w3", T0 + 10, LEASE).await);

    // The product removed: the claim says so.
    store.remove_product("p1").await.unwrap();
    store.release("w1").await.unwrap();
    let again = store
        .claim(Lease::new("w3", T0 + 10, LEASE), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|c| c.generation.is_none()));
}

pub async fn expired_leases_are_claimed_again(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1"]).await;
    let lease = Duration::from_secs(5);
    let leased = store.claim(Lease::new("w1", T0, lease), 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert!(nothing_due(store, "w2", T0 + 4_999, lease).await);
    assert_eq!(store.next_due().await.unwrap(), Some(T0 + 5_000));
    let taken = store
        .claim(Lease::new("w2", T0 + 5_000, lease), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "a dead worker's lease runs out");
}

pub async fn finish_schedules_retries_and_dead_letters(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1", "msg_2"]).await;
    let claimed = store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    assert_eq!(claimed.len(), 2);

    finish(store, "msg_1", "w1", &failed(1, T0 + 1_000, 1)).await;
    finish(store, "msg_2", "w1", &finished(Status::Delivered, 1)).await;

    assert!(nothing_due(store, "w1", T0 + 999, LEASE).await);
    assert_eq!(store.next_due().await.unwrap(), Some(T0 + 1_000));
    let retry = store
        .claim(Lease::new("w1", T0 + 1_000, LEASE), 10)
        .await
        .unwrap();
    assert_eq!(retry.len(), 1, "only the failed one comes back");
    assert_eq!(retry[0].id, "msg_1");
    assert_eq!((retry[0].attempts, retry[0].step), (1, 1));

    let dead = Finish {
        status: Status::Dead,
        next_at: None,
        ..failed(2, 0, 2)
    };
    store.finish("msg_1", "w1", &dead).await.unwrap();
    let (row, attempts) = store.delivery("msg_1").await.unwrap().unwrap();
    assert_eq!(row.status, Status::Dead);
    assert_eq!(row.attempts, 2);
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
    assert_eq!(
        attempts.iter().map(|a| a.number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(attempts[0], attempt(1, AttemptOutcome::Failed, Some(500)));
    assert!(nothing_due(store, "w1", T0 + 99_999_999, LEASE).await);
    assert_eq!(store.next_due().await.unwrap(), None);

    let (row, _) = store.delivery("msg_2").await.unwrap().unwrap();
    assert_eq!(row.status, Status::Delivered);
}

pub async fn finish_by_a_stale_owner_keeps_the_state(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1"]).await;
    let lease = Duration::from_secs(1);
    store.claim(Lease::new("w1", T0, lease), 10).await.unwrap();
    // w1 stalls past its lease; w2 takes over and delivers.
    store
        .claim(Lease::new("w2", T0 + 1_000, lease), 10)
        .await
        .unwrap();
    finish(store, "msg_1", "w2", &finished(Status::Delivered, 1)).await;
    finish(store, "msg_1", "w1", &failed(1, T0 + 5_000, 1)).await;
    let (row, attempts) = store.delivery("msg_1").await.unwrap().unwrap();
    assert_eq!(
        row.status,
        Status::Delivered,
        "the stale failure is ignored"
    );
    assert_eq!(
        attempts.len(),
        2,
        "but both attempts happened and are recorded"
    );
}

pub async fn disabled_targets(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1"]).await;
    store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    let gone = DisabledTarget {
        instance: "hook".to_owned(),
        key: "k9".to_owned(),
        target: "http://127.0.0.1:9/[redacted]".to_owned(),
        reason: "HTTP 410 Gone".to_owned(),
        at: T0,
    };
    let finish = Finish {
        status: Status::Disabled,
        disable: vec![gone.clone()],
        ..finished(Status::Disabled, 1)
    };
    store.finish("msg_1", "w1", &finish).await.unwrap();
    let product = store.product("p1").await.unwrap().unwrap();
    assert_eq!(product.disabled, [gone]);

    accept_one(store, "evt_2", &["msg_2"]).await;
    let claimed = store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    assert_eq!(claimed[0].disabled_targets, ["k9"]);

    // New options for the instance: a fresh start for its targets.
    put_instance(store, "p1", &hook("hook", "http://127.0.0.1:9/other")).await;
    assert!(disabled_targets_of(store, "p1").await.is_empty());
}

pub async fn redeliver(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1", "msg_2"]).await;
    store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    let dead = Finish {
        status: Status::Dead,
        next_at: None,
        done_targets: vec!["k1".to_owned()],
        ..failed(7, 0, 8)
    };
    store.finish("msg_1", "w1", &dead).await.unwrap();
    finish(store, "msg_2", "w1", &finished(Status::Delivered, 1)).await;

    assert!(!store.redeliver("msg_nope", T0).await.unwrap());
    assert!(store.redeliver("msg_1", T0 + 50).await.unwrap());
    assert!(store.redeliver("msg_2", T0 + 50).await.unwrap());
    let mut claimed = store
        .claim(Lease::new("w1", T0 + 50, LEASE), 10)
        .await
        .unwrap();
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(claimed.len(), 2);
    assert_eq!(claimed[0].step, 0, "a fresh schedule");
    assert_eq!(claimed[0].attempts, 1, "the history stays");
    assert_eq!(
        claimed[0].done_targets,
        ["k1"],
        "targets that got a dead-lettered delivery are not sent it twice"
    );
    assert!(
        claimed[1].done_targets.is_empty(),
        "redelivering a delivered one sends it again"
    );
}

pub async fn release(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1", "msg_2"]).await;
    store.claim(Lease::new("w1", T0, LEASE), 1).await.unwrap();
    store.claim(Lease::new("w2", T0, LEASE), 1).await.unwrap();
    store.release("w1").await.unwrap();
    let back = store.claim(Lease::new("w3", T0, LEASE), 10).await.unwrap();
    assert_eq!(back.len(), 1, "only w1's lease was handed back");
    store.release_all().await.unwrap();
    let leased = store.claim(Lease::new("w4", T0, LEASE), 10).await.unwrap();
    assert_eq!(leased.len(), 2);
}

pub async fn listing_and_stats(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1", "msg_2", "msg_3"]).await;
    store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    finish(store, "msg_1", "w1", &failed(1, T0 + 10, 1)).await;
    finish(
        store,
        "msg_2",
        "w1",
        &Finish {
            status: Status::Dead,
            next_at: None,
            ..failed(1, 0, 1)
        },
    )
    .await;

    let dead = store
        .deliveries(&DeliveryFilter {
            status: Some(Status::Dead),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        dead.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["msg_2"]
    );
    let all = store.deliveries(&DeliveryFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    let limited = store
        .deliveries(&DeliveryFilter {
            limit: 1,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let other = store
        .deliveries(&DeliveryFilter {
            service: Some("slack".to_owned()),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert!(other.is_empty());
    let future = store
        .deliveries(&DeliveryFilter {
            updated_since: Some(super::now_ms() + 60_000),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert!(future.is_empty());

    let stats = store.stats().await.unwrap();
    assert_eq!(stats.events, 1);
    assert_eq!(stats.attempts, 2);
    assert_eq!(stats.queue_depth, 2, "one pending, one failed");
    let count = |status| {
        stats
            .by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, n)| *n)
    };
    assert_eq!(count(Status::Pending), Some(1));
    assert_eq!(count(Status::Failed), Some(1));
    assert_eq!(count(Status::Dead), Some(1));
    assert_eq!(count(Status::Delivered), Some(0));
    assert_eq!(
        stats.by_service,
        [
            ("webhook".to_owned(), Status::Pending, 1),
            ("webhook".to_owned(), Status::Failed, 1),
            ("webhook".to_owned(), Status::Dead, 1),
        ]
    );
    assert_eq!(stats.next_due, Some(T0));
}

/// Many workers claiming at the same moment (separate connections on a shared
/// database): every delivery is handed out exactly once.
pub async fn concurrent_claims_never_overlap(store: &dyn Store) {
    let ids: Vec<String> = (0..120).map(|n| format!("msg_{n:03}")).collect();
    let borrowed: Vec<&str> = ids.iter().map(String::as_str).collect();
    accept_one(store, "evt_1", &borrowed).await;
    let workers = (0..8).map(|w| async move {
        let owner = format!("w{w}");
        let mut mine = Vec::new();
        loop {
            let claimed = store.claim(Lease::new(&owner, T0, LEASE), 7).await.unwrap();
            if claimed.is_empty() {
                return mine;
            }
            mine.extend(claimed.into_iter().map(|c| c.id));
        }
    });
    let mut handed_out: Vec<String> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();
    handed_out.sort();
    assert_eq!(handed_out, ids, "each delivery exactly once");
}

pub async fn tokens_are_kept_as_digests(store: &dyn Store) {
    use crate::tokens::{Scope, digest, generate};
    let (secret, new) = generate(Scope::Ingest, vec!["p1".into()], 1_000, Some(5_000));
    store.put_token(&new).await.unwrap();
    store.check_writable(2_000).await.unwrap();
    let found = store.token_by_digest(&digest(&secret)).await.unwrap();
    assert_eq!(found.as_ref(), Some(&new.token));
    assert!(
        store
            .token_by_digest(&digest("other"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.tokens().await.unwrap(), vec![new.token.clone()]);
    assert!(store.revoke_token(&new.token.id).await.unwrap());
    assert!(!store.revoke_token(&new.token.id).await.unwrap());
    assert!(store.tokens().await.unwrap().is_empty());
}

/// The session whose cookie has this digest, if it is still open at `now`.
async fn session_by_digest(store: &dyn Store, digest: &str, now: Millis) -> Option<ConsoleSession> {
    store.session_by_digest(digest, now).await.unwrap()
}

fn console_session(id: &str, link: Option<&str>, expires_at: Millis) -> ConsoleSession {
    ConsoleSession {
        id: id.to_owned(),
        product: link.map(|_| "p1".to_owned()),
        link: link.map(str::to_owned),
        created_at: 1_000,
        expires_at,
    }
}

pub async fn console_sessions_end_expire_and_go_with_their_link(store: &dyn Store) {
    let admin = console_session("ses_admin", None, 9_000);
    assert!(store.put_session(&admin, "digest-admin").await.unwrap());
    let found = session_by_digest(store, "digest-admin", 2_000).await;
    assert_eq!(found.as_ref(), Some(&admin));
    assert_eq!(store.session_by_digest("other", 2_000).await.unwrap(), None);
    assert_eq!(
        session_by_digest(store, "digest-admin", 9_000).await,
        None,
        "expired"
    );

    // A session from a link is stored only while the link is kept.
    let portal = console_session("ses_portal", Some("lnk_1"), 5_000);
    assert!(
        !store.put_session(&portal, "digest-portal").await.unwrap(),
        "no such link"
    );
    let link = PortalLink {
        id: "lnk_1".into(),
        product: Some("p1".into()),
        created_at: 1_000,
        expires_at: 5_000,
    };
    store.put_link(&link).await.unwrap();
    assert!(store.put_session(&portal, "digest-portal").await.unwrap());
    assert_eq!(store.link("lnk_1").await.unwrap().as_ref(), Some(&link));
    assert_eq!(store.links(2_000).await.unwrap(), vec![link.clone()]);
    assert!(store.links(5_000).await.unwrap().is_empty(), "expired");
    let listed = store.sessions(2_000).await.unwrap();
    assert_eq!(listed, vec![admin.clone(), portal.clone()]);

    // Revoking the link ends its sessions, not the others.
    assert!(store.revoke_link("lnk_1").await.unwrap());
    assert!(!store.revoke_link("lnk_1").await.unwrap());
    assert_eq!(session_by_digest(store, "digest-portal", 2_000).await, None);
    assert_eq!(store.link("lnk_1").await.unwrap(), None);
    assert_eq!(store.sessions(2_000).await.unwrap(), vec![admin.clone()]);

    // Ending a session (signing out, an admin's revoke) is for good.
    assert!(store.end_session("ses_admin").await.unwrap());
    assert!(!store.end_session("ses_admin").await.unwrap());
    assert_eq!(session_by_digest(store, "digest-admin", 2_000).await, None);

    // Expired rows are forgotten when new ones come.
    let later = ConsoleSession {
        created_at: 10_000,
        expires_at: 20_000,
        ..console_session("ses_later", None, 0)
    };
    let soon = console_session("ses_soon", None, 3_000);
    store.put_session(&soon, "digest-soon").await.unwrap();
    assert!(store.put_session(&later, "digest-later").await.unwrap());
    assert_eq!(store.sessions(0).await.unwrap(), vec![later]);
}

/// `lookout replay`: events since a time, oldest first (or newest first), in batches,
/// each with its deliveries; deliveries added to a stored event once, however often
/// they are added.
pub async fn history_is_read_in_batches_and_added_to_once(store: &dyn Store) {
    for (id, at, product) in [("e1", T0, "p1"), ("e2", T0 + 1, "p1"), ("e3", T0 + 2, "p2")] {
        store
            .accept(&NewEvent {
                id: id.to_owned(),
                product: product.to_owned(),
                payload: format!(r#"{{"id":"{id}"}}"#),
                received_at: at,
                idempotency: None,
                routed_with: None,
                trace_context: None,
                deliveries: vec![delivery(product, &format!("d-{id}"))],
            })
            .await
            .unwrap();
    }
    let read = |since, product: Option<&str>, after: Option<(Millis, &str)>, limit| EventFilter {
        since,
        product: product.map(str::to_owned),
        after: after.map(|(at, id)| (at, id.to_owned())),
        limit,
        newest_first: false,
    };
    let ids = |events: Vec<super::StoredEvent>| -> Vec<String> {
        events.into_iter().map(|e| e.id).collect()
    };
    let first = store.events_since(&read(T0, None, None, 2)).await.unwrap();
    assert_eq!(first[0].payload, r#"{"id":"e1"}"#);
    assert_eq!(first[0].deliveries.len(), 1);
    assert_eq!(first[0].deliveries[0].id, "d-e1");
    assert_eq!(ids(first), ["e1", "e2"]);
    let next = store
        .events_since(&read(T0, None, Some((T0 + 1, "e2")), 2))
        .await
        .unwrap();
    assert_eq!(ids(next), ["e3"]);
    let later = store
        .events_since(&read(T0 + 1, Some("p1"), None, 10))
        .await;
    assert_eq!(ids(later.unwrap()), ["e2"]);
    // Newest first, batch by batch the other way.
    let newest = |after: Option<(Millis, &str)>| EventFilter {
        newest_first: true,
        ..read(T0, None, after, 2)
    };
    let first = store.events_since(&newest(None)).await.unwrap();
    assert_eq!(ids(first), ["e3", "e2"]);
    let next = store.events_since(&newest(Some((T0 + 1, "e2")))).await;
    assert_eq!(ids(next.unwrap()), ["e1"]);

    let added = [NewDelivery::in_own_lane(
        "p1",
        "d-e1-replay",
        "new-hook",
        "webhook",
    )];
    assert_eq!(store.enqueue("e1", &added, T0 + 5).await.unwrap(), 1);
    assert_eq!(store.enqueue("e1", &added, T0 + 6).await.unwrap(), 0);
    let e1 = store.events_since(&read(T0, None, None, 1)).await.unwrap();
    let deliveries: Vec<(&str, Status)> = e1[0]
        .deliveries
        .iter()
        .map(|d| (d.instance.as_str(), d.status))
        .collect();
    assert_eq!(
        deliveries,
        [("hook", Status::Pending), ("new-hook", Status::Pending)]
    );
    let due = store
        .claim(Lease::new("w", T0 + 5, LEASE), 10)
        .await
        .unwrap();
    assert!(due.iter().any(|c| c.id == "d-e1-replay"), "{due:?}");
}

/// What the console reads: deliveries page by page (keyset), a product's attempt
/// activity, an event's payload, and a service switched off with its options kept.
pub async fn console_pages_and_activity(store: &dyn Store) {
    let ids = ["msg_1", "msg_2", "msg_3", "msg_4", "msg_5"];
    accept_one(store, "evt_1", &ids).await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let filter = DeliveryFilter {
            product: Some("p1".to_owned()),
            limit: 2,
            after: after.clone(),
            ..DeliveryFilter::default()
        };
        let page = store.deliveries(&filter).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.updated_at, last.id.clone()));
        seen.extend(page.iter().map(|row| row.id.clone()));
    }
    assert_eq!(seen, ["msg_5", "msg_4", "msg_3", "msg_2", "msg_1"]);

    store.claim(Lease::new("w1", T0, LEASE), 2).await.unwrap();
    finish(store, "msg_1", "w1", &failed(1, T0 + 10, 1)).await;
    finish(store, "msg_2", "w1", &finished(Status::Delivered, 1)).await;
    let minute = T0 - T0.rem_euclid(60_000);
    let window = |since| ActivityWindow {
        since,
        durations_since: since,
    };
    let activity = store.activity("p1", window(T0 - 1_000)).await.unwrap();
    let mut counts = activity.counts.clone();
    counts.sort();
    assert_eq!(
        counts,
        [
            (minute, AttemptOutcome::Delivered, 1),
            (minute, AttemptOutcome::Failed, 1)
        ]
    );
    assert_eq!(activity.durations, [(T0, 12), (T0, 12)]);
    let mut by_status = activity.by_status.clone();
    by_status.sort();
    assert_eq!(
        by_status,
        [
            (Status::Pending, 3),
            (Status::Failed, 1),
            (Status::Delivered, 1)
        ]
    );
    let later = store.activity("p1", window(T0 + 1)).await.unwrap();
    assert!(later.counts.is_empty() && later.durations.is_empty());
    let elsewhere = store.activity("p2", window(0)).await.unwrap();
    assert!(elsewhere.by_status.is_empty());

    let payload = store.event_payload("evt_1").await.unwrap();
    assert_eq!(payload.as_deref(), Some(r#"{"model":"Item"}"#));
    assert_eq!(store.event_payload("evt_none").await.unwrap(), None);

    let mut off = hook("hook", "http://127.0.0.1:9/a");
    off.options
        .insert(super::ENABLED.to_owned(), Value::Bool(false));
    store.put_instance("p1", &off).await.unwrap();
    let product = store.product("p1").await.unwrap().unwrap();
    assert!(!product.instances[0].is_enabled());
    assert_eq!(
        product.instances[0].options["urls"],
        json!(["http://127.0.0.1:9/a"])
    );
}

/// Rows as a lookout before migration 0012 stored them (attempts without their product
/// and minute), in SQL both stores take: product `p1`, one delivery, one attempt at
/// [`T0`] that took 12 ms.
#[cfg(test)]
pub(super) const ATTEMPT_BEFORE_MINUTES: &str = "
    INSERT INTO products (id, created_at) VALUES ('p1', 0);
    INSERT INTO events (id, product_id, payload, received_at) VALUES ('evt_1', 'p1', '{}', 0);
    INSERT INTO deliveries (id, event_id, product_id, instance, service, status, attempts,
                            created_at, updated_at)
        VALUES ('msg_1', 'evt_1', 'p1', 'hook', 'webhook', 'delivered', 1, 0, 0);
    INSERT INTO attempts (delivery_id, number, at, duration_ms, outcome)
        VALUES ('msg_1', 1, 1700000000000, 12, 'delivered');";

/// What a store that migrated [`ATTEMPT_BEFORE_MINUTES`] says of it: the attempt is
/// counted in its minute, with its duration.
#[cfg(test)]
pub(super) async fn attempts_before_minutes_are_counted(store: &dyn Store) {
    let window = ActivityWindow {
        since: T0 - 1_000,
        durations_since: T0 - 1_000,
    };
    let activity = store.activity("p1", window).await.unwrap();
    let minute = T0 - T0.rem_euclid(60_000);
    assert_eq!(activity.counts, [(minute, AttemptOutcome::Delivered, 1)]);
    assert_eq!(activity.durations, [(T0, 12)]);
}
