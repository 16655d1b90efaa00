//! The shaping part of the suite every [`Store`] must pass (server/src/shaping.rs):
//! coalescing and digests, through the trait alone.

use super::suite::{LEASE, T0, finished};
use super::{Lease, NewDelivery, NewEvent, Status, Store};
use crate::clock::Millis;
use crate::lanes::Lane;
use crate::shaping::{Coalescing, Gathering, Shape};

/// Declares one `#[tokio::test]` per function of this suite (see
/// [`store_suite!`](crate::store::suite::store_suite)).
#[cfg(test)]
macro_rules! shaping_suite {
    (open: $open:expr, close: $close:expr) => {
        $crate::store::suite::suite_tests!(shaping_suite, $open, $close;
            a_newer_event_supersedes_the_queued_ones_of_its_key,
            max_wait_bounds_how_long_a_stream_holds_its_key,
            what_was_attempted_or_is_in_flight_is_never_superseded,
            coalescing_and_order_agree,
            events_are_gathered_into_one_digest,
            a_full_digest_is_due_at_once_and_the_next_opens_another,
            deliveries_added_later_are_shaped_as_they_arrive,
        );
    };
}
#[cfg(test)]
pub(crate) use shaping_suite;

const WINDOW: Millis = 10_000;
const MAX_WAIT: Millis = 60_000;

fn lane() -> Lane {
    Lane {
        cap: 1_000,
        ..Lane::own("p1", "board")
    }
}

fn coalesced(id: &str, key: &str, order: Option<&str>) -> NewDelivery {
    NewDelivery {
        lane: lane(),
        order_key: order.map(str::to_owned),
        shape: Some(Shape::Coalesce(Coalescing {
            key: key.to_owned(),
            window_ms: WINDOW,
            max_wait_ms: MAX_WAIT,
        })),
        ..NewDelivery::in_own_lane("p1", id, "board", "webhook")
    }
}

fn digested(id: &str, max_events: u32) -> NewDelivery {
    NewDelivery {
        lane: lane(),
        shape: Some(Shape::Digest(Gathering {
            key: "digest-key".to_owned(),
            window_ms: WINDOW,
            max_events,
        })),
        ..NewDelivery::in_own_lane("p1", id, "board", "webhook")
    }
}

/// Accepts event `evt_{n}` received `at`, with `delivery`.
async fn accept(store: &dyn Store, n: &str, at: Millis, delivery: NewDelivery) {
    let event = NewEvent {
        id: format!("evt_{n}"),
        product: "p1".to_owned(),
        payload: format!(r#"{{"model":"Item","n":"{n}"}}"#),
        received_at: at,
        deliveries: vec![delivery],
        idempotency: None,
        routed_with: None,
        trace_context: None,
    };
    store.accept(&event).await.unwrap();
}

/// A delivery's status and what replaced it.
async fn state(store: &dyn Store, id: &str) -> (Status, Option<String>) {
    let (row, _) = store.delivery(id).await.unwrap().unwrap();
    (row.status, row.replaced_by)
}

async fn claimed(store: &dyn Store, owner: &str, now: Millis) -> Vec<super::Claimed> {
    store
        .claim(Lease::new(owner, now, LEASE), 100)
        .await
        .unwrap()
}

fn ids(claimed: &[super::Claimed]) -> Vec<&str> {
    claimed.iter().map(|c| c.id.as_str()).collect()
}

/// Six updates of one item within the window: the newest is the only one sent, at the
/// end of its own window; the others end `superseded`, linked to it. Another item's
/// delivery is left alone.
pub async fn a_newer_event_supersedes_the_queued_ones_of_its_key(store: &dyn Store) {
    for n in 0..6 {
        let id = format!("msg_{n}");
        accept(
            store,
            &n.to_string(),
            T0 + n * 1_000,
            coalesced(&id, "item-5", None),
        )
        .await;
    }
    accept(store, "other", T0, coalesced("msg_other", "item-6", None)).await;
    for n in 0..5 {
        let (status, by) = state(store, &format!("msg_{n}")).await;
        assert_eq!(status, Status::Superseded, "msg_{n}");
        // Each was replaced by the next one; the chain ends at the newest.
        assert_eq!(by.as_deref(), Some(format!("msg_{}", n + 1).as_str()));
    }
    assert_eq!(state(store, "msg_5").await, (Status::Pending, None));
    let replaced = store.shaped_into("msg_5").await.unwrap();
    assert_eq!(replaced.len(), 1, "msg_4 replaced by msg_5: {replaced:?}");
    assert!(
        claimed(store, "w", T0 + 5_000).await.is_empty(),
        "in its window"
    );
    assert_eq!(ids(&claimed(store, "w", T0 + WINDOW).await), ["msg_other"]);
    let last = claimed(store, "w", T0 + 5_000 + WINDOW).await;
    assert_eq!(ids(&last), ["msg_5"]);
    assert!(
        last[0].payload.contains(r#""n":"5""#),
        "the newest event is sent"
    );
}

/// A stream of updates each within the window of the one before is sent no later than
/// `max_wait` after its first event; the next update then starts a stream of its own.
pub async fn max_wait_bounds_how_long_a_stream_holds_its_key(store: &dyn Store) {
    let every = WINDOW / 2;
    let mut n = 0;
    while n * every < MAX_WAIT {
        accept(
            store,
            &n.to_string(),
            T0 + n * every,
            coalesced(&format!("msg_{n}"), "k", None),
        )
        .await;
        n += 1;
    }
    let last = format!("msg_{}", n - 1);
    let (row, _) = store.delivery(&last).await.unwrap().unwrap();
    assert_eq!(
        row.next_at,
        Some(T0 + MAX_WAIT),
        "due at max_wait, not later"
    );
    let sent = claimed(store, "w", T0 + MAX_WAIT).await;
    assert_eq!(ids(&sent), [last.as_str()]);
    // Leased now: a newer update does not touch it, and waits its own window.
    accept(
        store,
        "late",
        T0 + MAX_WAIT + 1,
        coalesced("msg_late", "k", None),
    )
    .await;
    assert_eq!(state(store, &last).await.0, Status::Pending);
    assert_eq!(state(store, "msg_late").await, (Status::Pending, None));
}

/// Only deliveries never attempted and still in their window are replaced: one due
/// (its window over), leased or retrying is sent as it is.
pub async fn what_was_attempted_or_is_in_flight_is_never_superseded(store: &dyn Store) {
    accept(store, "a", T0, coalesced("msg_a", "k", None)).await;
    let first = claimed(store, "w", T0 + WINDOW).await;
    assert_eq!(ids(&first), ["msg_a"]);
    accept(store, "b", T0 + WINDOW + 1, coalesced("msg_b", "k", None)).await;
    assert_eq!(state(store, "msg_a").await.0, Status::Pending, "in flight");
    let mut failed = finished(Status::Failed, 1);
    failed.next_at = Some(T0 + 3 * WINDOW);
    store.finish("msg_a", "w", &failed).await.unwrap();
    accept(store, "c", T0 + WINDOW + 2, coalesced("msg_c", "k", None)).await;
    assert_eq!(state(store, "msg_a").await.0, Status::Failed, "retrying");
    assert_eq!(
        state(store, "msg_b").await,
        (Status::Superseded, Some("msg_c".to_owned()))
    );
}

/// With `order_by` on the same key: a replaced delivery that was first of its value lets
/// its replacement go on; one held behind a delivery in flight is replaced by one held
/// there too, which goes when the one in flight is finished.
pub async fn coalescing_and_order_agree(store: &dyn Store) {
    accept(store, "a", T0, coalesced("msg_a", "k", Some("o"))).await;
    accept(store, "b", T0 + 1, coalesced("msg_b", "k", Some("o"))).await;
    assert_eq!(state(store, "msg_a").await.0, Status::Superseded);
    let (row, _) = store.delivery("msg_b").await.unwrap().unwrap();
    assert_eq!(
        row.next_at,
        Some(T0 + 1 + WINDOW),
        "not held behind what it replaced"
    );
    assert_eq!(ids(&claimed(store, "w", T0 + 1 + WINDOW).await), ["msg_b"]);

    accept(
        store,
        "c",
        T0 + WINDOW + 2,
        coalesced("msg_c", "k", Some("o")),
    )
    .await;
    accept(
        store,
        "d",
        T0 + WINDOW + 3,
        coalesced("msg_d", "k", Some("o")),
    )
    .await;
    assert_eq!(state(store, "msg_c").await.0, Status::Superseded);
    let (held, _) = store.delivery("msg_d").await.unwrap().unwrap();
    assert_eq!(held.next_at, None, "held behind msg_b, in flight");
    let late = T0 + 3 * WINDOW;
    assert!(claimed(store, "w2", late).await.is_empty());
    let delivered = [("msg_b".to_owned(), finished(Status::Delivered, 1))];
    let rule = super::upkeep::DisableRule::default();
    store
        .finish_batch("w", &delivered, late, &rule)
        .await
        .unwrap();
    assert_eq!(ids(&claimed(store, "w2", late).await), ["msg_d"]);
}

/// Five events within the window: one digest, a delivery of its own, due at the end of
/// the window and claimed with every event's payload, oldest first; each event's own
/// delivery ends `digested`, linked to it.
pub async fn events_are_gathered_into_one_digest(store: &dyn Store) {
    for n in 0..5 {
        accept(
            store,
            &n.to_string(),
            T0 + n * 100,
            digested(&format!("msg_{n}"), 50),
        )
        .await;
    }
    let (status, digest) = state(store, "msg_0").await;
    assert_eq!(status, Status::Digested);
    let digest = digest.expect("linked to its digest");
    for n in 1..5 {
        assert_eq!(
            state(store, &format!("msg_{n}")).await,
            (Status::Digested, Some(digest.clone()))
        );
    }
    let (row, _) = store.delivery(&digest).await.unwrap().unwrap();
    assert_eq!(row.digest_events, Some(5));
    assert_eq!(row.next_at, Some(T0 + WINDOW));
    assert_eq!(store.shaped_into(&digest).await.unwrap().len(), 5);
    assert!(claimed(store, "w", T0 + WINDOW - 1).await.is_empty());
    let sent = claimed(store, "w", T0 + WINDOW).await;
    assert_eq!(ids(&sent), [digest.as_str()]);
    let payloads = sent[0].digest.clone().expect("a digest");
    assert_eq!(payloads.len(), 5);
    for (n, payload) in payloads.iter().enumerate() {
        assert!(payload.contains(&format!(r#""n":"{n}""#)), "{payloads:?}");
    }
    // Leased: the next event opens a digest of its own.
    accept(store, "5", T0 + WINDOW + 1, digested("msg_5", 50)).await;
    let (_, next) = state(store, "msg_5").await;
    assert_ne!(next.as_deref(), Some(digest.as_str()));
}

/// The digest that reaches `max_events` is due at once; the next event opens another.
pub async fn a_full_digest_is_due_at_once_and_the_next_opens_another(store: &dyn Store) {
    for n in 0..4 {
        accept(
            store,
            &n.to_string(),
            T0 + n,
            digested(&format!("msg_{n}"), 3),
        )
        .await;
    }
    let first = state(store, "msg_0").await.1.unwrap();
    let second = state(store, "msg_3").await.1.unwrap();
    assert_ne!(first, second);
    let sent = claimed(store, "w", T0 + 3).await;
    assert_eq!(
        ids(&sent),
        [first.as_str()],
        "full: due before its window ends"
    );
    assert_eq!(sent[0].digest.as_ref().map(Vec::len), Some(3));
}

/// Deliveries added to stored events (`lookout replay --send`) are shaped as at the
/// intake, arriving when added: three into one digest, three updates of one item into
/// one delivery. Adding the same ones again adds and changes nothing.
pub async fn deliveries_added_later_are_shaped_as_they_arrive(store: &dyn Store) {
    for n in 0..3 {
        let plain = NewDelivery::in_own_lane("p1", &format!("msg_plain_{n}"), "hook", "webhook");
        accept(store, &n.to_string(), T0 + n * 100, plain).await;
    }
    let now = T0 + 100_000;
    let added = |n: i64| {
        [
            digested(&format!("msg_d{n}"), 50),
            coalesced(&format!("msg_c{n}"), "item-1", None),
        ]
    };
    for round in ["first", "again"] {
        for n in 0..3 {
            let count = store.enqueue(&format!("evt_{n}"), &added(n), now).await;
            let expected = if round == "first" { 2 } else { 0 };
            assert_eq!(count.unwrap(), expected, "{round}: evt_{n}");
        }
        let (status, digest) = state(store, "msg_d0").await;
        assert_eq!(status, Status::Digested, "{round}");
        let digest = digest.expect("linked to its digest");
        assert_eq!(
            store.shaped_into(&digest).await.unwrap().len(),
            3,
            "{round}"
        );
        assert_eq!(
            state(store, "msg_c0").await,
            (Status::Superseded, Some("msg_c1".to_owned()))
        );
        assert_eq!(
            state(store, "msg_c1").await,
            (Status::Superseded, Some("msg_c2".to_owned()))
        );
        assert_eq!(state(store, "msg_c2").await, (Status::Pending, None));
    }
    let mut sent: Vec<String> = claimed(store, "w", now + WINDOW)
        .await
        .into_iter()
        .filter(|c| !c.id.starts_with("msg_plain"))
        .map(|c| c.id)
        .collect();
    sent.sort();
    let (_, digest) = state(store, "msg_d2").await;
    let mut expected = vec!["msg_c2".to_owned(), digest.unwrap()];
    expected.sort();
    assert_eq!(
        sent, expected,
        "one digest and the newest update, when their windows end"
    );
}
