//! The lanes part of the suite every [`Store`] must pass (see [`lanes`](crate::lanes)):
//! paces, caps, turns, waits asked for, and ordered keys, through the trait alone.

use super::suite::{LEASE, T0};
use super::{Finish, Lease, Millis, NewDelivery, NewEvent, Status, Store, now_ms};
use crate::lanes::{Lane, Pace, Waiting};

/// Declares one `#[tokio::test]` per function of this suite (see
/// [`store_suite!`](crate::store::suite::store_suite)).
#[cfg(test)]
macro_rules! lanes_suite {
    (open: $open:expr, close: $close:expr) => {
        $crate::store::suite::suite_tests!(lanes_suite, $open, $close;
            a_paced_destination_gives_slots_on_its_schedule,
            a_lane_holds_at_most_its_cap,
            a_slow_lane_gets_fewer_slots,
            lanes_take_turns,
            a_wait_asked_for_holds_the_destination,
            ordered_deliveries_go_one_at_a_time,
        );
    };
}
#[cfg(test)]
pub(crate) use lanes_suite;

/// A lane of `product` to `destination`.
fn lane(product: &str, destination: &str, pace: Pace, cap: u32) -> Lane {
    Lane {
        key: format!("{product}->{destination}"),
        destination: destination.to_owned(),
        pace,
        cap,
    }
}

/// Accepts one event of `product` at `at` per id, each with one delivery `id` in `lane`
/// (and order key `key`, if any).
async fn accept(
    store: &dyn Store,
    product: &str,
    at: Millis,
    lane: &Lane,
    ids: &[(&str, Option<&str>)],
) {
    let events: Vec<NewEvent> = ids
        .iter()
        .map(|(id, key)| NewEvent {
            id: format!("evt_{id}"),
            product: product.to_owned(),
            payload: "{}".to_owned(),
            received_at: at,
            deliveries: vec![NewDelivery {
                lane: lane.clone(),
                order_key: key.map(str::to_owned),
                ..NewDelivery::in_own_lane(product, id, "hook", "webhook")
            }],
            idempotency: None,
            routed_with: None,
            trace_context: None,
        })
        .collect();
    store.accept_batch(&events).await.unwrap();
}

/// The ids claimed by `owner` at `now`, at most `limit`, sorted.
async fn claim(store: &dyn Store, owner: &str, now: Millis, limit: usize) -> Vec<String> {
    let mut ids: Vec<String> = store
        .claim(Lease::new(owner, now, LEASE), limit)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

/// An attempt that ended with `status`, its request taking `latency_ms`.
fn ended(status: Status, latency_ms: u64) -> Finish {
    Finish {
        latency_ms: Some(latency_ms),
        ..super::suite::finished(status, 1)
    }
}

async fn deliver(store: &dyn Store, owner: &str, ids: &[String]) {
    for id in ids {
        store
            .finish(id, owner, &ended(Status::Delivered, 5))
            .await
            .unwrap();
    }
}

const SLACK: Pace = Pace {
    every_ms: 1_000,
    burst: 3,
};

/// Nothing is claimed without a slot: the burst at once, then one a second, whoever
/// claims and for whichever product; the rest waits unclaimed (no lease, no attempt).
pub async fn a_paced_destination_gives_slots_on_its_schedule(store: &dyn Store) {
    let a = lane("pa", "slack-hook", SLACK, 100);
    let ids: Vec<String> = (0..10).map(|n| format!("msg_a{n}")).collect();
    let pairs: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
    accept(store, "pa", T0, &a, &pairs).await;
    let first = claim(store, "w1", T0, 10).await;
    assert_eq!(first.len(), 3, "the burst: {first:?}");
    deliver(store, "w1", &first).await;
    assert!(
        claim(store, "w2", T0 + 999, 10).await.is_empty(),
        "no slot yet"
    );
    let due = store.next_due().await.unwrap().unwrap();
    assert!(due <= T0 + 1_000, "due at the next slot, not later: {due}");
    assert_eq!(claim(store, "w2", T0 + 1_000, 10).await.len(), 1);

    // Another product's lane to the same destination shares its schedule.
    let b = lane("pb", "slack-hook", SLACK, 100);
    accept(store, "pb", T0, &b, &[("msg_b0", None)]).await;
    assert!(claim(store, "w3", T0 + 1_500, 10).await.is_empty());
    let next = claim(store, "w3", T0 + 2_000, 10).await;
    assert_eq!(next.len(), 1, "one slot for both products: {next:?}");
    let (row, attempts) = store.delivery("msg_a9").await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (Status::Pending, 0));
    assert!(attempts.is_empty(), "waiting for a slot is not an attempt");
    let waiting = store.waiting("msg_a9", T0 + 2_000).await.unwrap();
    assert_eq!(waiting, Some(Waiting::Paced { until: T0 + 3_000 }));
}

/// A lane has at most its cap in flight; a finished attempt frees a slot at once.
pub async fn a_lane_holds_at_most_its_cap(store: &dyn Store) {
    let capped = lane("pa", "hook", Pace::NONE, 2);
    let pairs = [
        ("msg_1", None),
        ("msg_2", None),
        ("msg_3", None),
        ("msg_4", None),
    ];
    accept(store, "pa", T0, &capped, &pairs).await;
    let first = claim(store, "w1", T0, 10).await;
    assert_eq!(first, ["msg_1", "msg_2"]);
    assert!(
        claim(store, "w2", T0 + 1, 10).await.is_empty(),
        "at its cap"
    );
    let waiting = |id| store.waiting(id, T0 + 1);
    let full = Waiting::AtCap {
        in_flight: 2,
        cap: 2,
    };
    assert_eq!(waiting("msg_3").await.unwrap(), Some(full));
    let leased = Waiting::InFlight {
        until: T0 + LEASE.as_millis() as Millis,
    };
    assert_eq!(waiting("msg_1").await.unwrap(), Some(leased));
    deliver(store, "w1", &first[..1]).await;
    assert_eq!(claim(store, "w2", T0 + 2, 10).await, ["msg_3"]);
    // A lease that runs out (a worker died) frees its slot too.
    let later = T0 + LEASE.as_millis() as Millis + 10;
    assert_eq!(
        claim(store, "w3", later, 10).await.len(),
        2,
        "two expired, one left"
    );
}

/// A lane whose answers take three seconds gets a third of its cap.
pub async fn a_slow_lane_gets_fewer_slots(store: &dyn Store) {
    let slow = lane("pa", "slow-hook", Pace::NONE, 6);
    let ids: Vec<String> = (0..20).map(|n| format!("msg_{n:02}")).collect();
    let pairs: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
    accept(store, "pa", T0, &slow, &pairs).await;
    let first = claim(store, "w1", T0, 20).await;
    assert_eq!(first.len(), 6);
    for id in &first {
        store
            .finish(id, "w1", &ended(Status::Delivered, 3_000))
            .await
            .unwrap();
    }
    assert_eq!(
        claim(store, "w1", T0 + 1, 20).await.len(),
        2,
        "6 × 1 s / 3 s"
    );
}

/// A product with a long queue does not delay one with a single delivery: each lane
/// gets its share of a claim.
pub async fn lanes_take_turns(store: &dyn Store) {
    let busy = lane("busy", "hook-a", Pace::NONE, 1_000);
    let ids: Vec<String> = (0..200).map(|n| format!("msg_busy{n:03}")).collect();
    let pairs: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
    accept(store, "busy", T0 - 1_000, &busy, &pairs).await;
    let quiet = lane("quiet", "hook-b", Pace::NONE, 1_000);
    accept(store, "quiet", T0, &quiet, &[("msg_quiet", None)]).await;
    let waiting = store.waiting("msg_quiet", T0).await.unwrap();
    assert_eq!(waiting, Some(Waiting::Due));
    let first = claim(store, "w1", T0, 4).await;
    assert_eq!(first.len(), 4);
    assert!(first.contains(&"msg_quiet".to_owned()), "{first:?}");
}

/// A `Retry-After` holds every lane to its destination until then; the delivery asked
/// to wait is due then, without using a step of its schedule.
pub async fn a_wait_asked_for_holds_the_destination(store: &dyn Store) {
    let a = lane("pa", "shared", Pace::NONE, 100);
    let b = lane("pb", "shared", Pace::NONE, 100);
    accept(store, "pa", T0, &a, &[("msg_a1", None), ("msg_a2", None)]).await;
    let taken = claim(store, "w1", T0, 1).await;
    assert_eq!(taken, ["msg_a1"]);
    let asked = Finish {
        status: Status::Failed,
        next_at: Some(T0 + 30_000),
        hold_until: Some(T0 + 30_000),
        throttled: true,
        ..ended(Status::Failed, 5)
    };
    store.finish("msg_a1", "w1", &asked).await.unwrap();
    accept(store, "pb", T0, &b, &[("msg_b1", None)]).await;
    assert!(claim(store, "w1", T0 + 29_999, 10).await.is_empty(), "held");
    assert_eq!(claim(store, "w1", T0 + 30_000, 10).await.len(), 3);
    let (row, _) = store.delivery("msg_a1").await.unwrap().unwrap();
    assert_eq!(row.attempts, 1);
}

/// Deliveries of one order key go one at a time, in the order they were stored; one
/// retrying holds back only its own key; one dead-lettered lets the next go on.
pub async fn ordered_deliveries_go_one_at_a_time(store: &dyn Store) {
    // A promoted delivery is due at the store's own clock.
    let now = now_ms();
    let ordered = lane("pa", "ordered-hook", Pace::NONE, 100);
    let pairs = [
        ("msg_k1_a", Some("k1")),
        ("msg_k2_a", Some("k2")),
        ("msg_k1_b", Some("k1")),
        ("msg_none", None),
        ("msg_k1_c", Some("k1")),
    ];
    accept(store, "pa", now, &ordered, &pairs[..3]).await;
    accept(store, "pa", now, &ordered, &pairs[3..]).await;
    let first = claim(store, "w1", now, 10).await;
    assert_eq!(first, ["msg_k1_a", "msg_k2_a", "msg_none"]);

    // k1's first fails: k1's next waits (even once the retry is due), k2's goes on.
    let retry = Finish {
        status: Status::Failed,
        next_at: Some(now + 1_000),
        step: 1,
        ..ended(Status::Failed, 5)
    };
    store.finish("msg_k1_a", "w1", &retry).await.unwrap();
    deliver(store, "w1", &["msg_k2_a".to_owned()]).await;
    assert!(claim(store, "w1", now + 500, 10).await.is_empty());
    let waiting = |id| store.waiting(id, now + 500);
    let held = Waiting::Held {
        behind: Some("msg_k1_a".to_owned()),
    };
    assert_eq!(waiting("msg_k1_b").await.unwrap(), Some(held));
    let retry_at = Waiting::Scheduled { at: now + 1_000 };
    assert_eq!(waiting("msg_k1_a").await.unwrap(), Some(retry_at));
    assert_eq!(waiting("msg_k2_a").await.unwrap(), None, "delivered");
    assert_eq!(claim(store, "w1", now + 1_000, 10).await, ["msg_k1_a"]);

    // It goes dead: the next of k1 is released, not the one after it.
    let dead = Finish {
        status: Status::Dead,
        ..ended(Status::Failed, 5)
    };
    store.finish("msg_k1_a", "w1", &dead).await.unwrap();
    let later = now_ms() + 10;
    assert_eq!(claim(store, "w1", later, 10).await, ["msg_k1_b"]);

    // Redelivered while k1_b is in flight, the dead one waits its turn again.
    assert!(store.redeliver("msg_k1_a", later).await.unwrap());
    assert!(claim(store, "w2", later + 1, 10).await.is_empty());
    deliver(store, "w1", &["msg_k1_b".to_owned()]).await;
    let after = now_ms() + 20;
    assert_eq!(claim(store, "w1", after, 10).await, ["msg_k1_a"]);
    deliver(store, "w1", &["msg_k1_a".to_owned()]).await;
    assert_eq!(claim(store, "w1", now_ms() + 30, 10).await, ["msg_k1_c"]);
}
