//! The fallback part of the suite every [`Store`] must pass (docs/SHAPING.md, "Fallback
//! routes"): a delivery that ends dead or disabled stores its fallback with that
//! outcome, in the same transaction, once, linked both ways, one hop only.

use std::time::Duration;

use super::suite::{LEASE, T0, accept_one, finished};
use super::upkeep::DisableRule;
use super::{DeliveryFilter, Finish, Lease, NewDelivery, Status, Store};

/// Declares one `#[tokio::test]` per function of this suite (see
/// [`store_suite!`](crate::store::suite::store_suite)).
#[cfg(test)]
macro_rules! fallback_suite {
    (open: $open:expr, close: $close:expr) => {
        $crate::store::suite::suite_tests!(fallback_suite, $open, $close;
            a_dead_delivery_falls_back_linked_both_ways,
            a_dead_letter_recorded_twice_falls_back_once,
            a_fallback_never_falls_back,
            the_dead_letter_and_its_fallback_are_stored_together_or_not_at_all,
        );
    };
}
#[cfg(test)]
pub(crate) use fallback_suite;

/// A delivery `id` of `p1`'s `mail` service, in a lane of its own.
fn to_mail(id: &str) -> NewDelivery {
    NewDelivery::in_own_lane("p1", id, "mail", "webhook")
}

/// `status` (dead or disabled), with `fallback` to be stored with it.
fn ended(status: Status, fallback: &str) -> Finish {
    Finish {
        fallback: Some(to_mail(fallback)),
        ..finished(status, 1)
    }
}

/// Records `finish` of delivery `id` by `owner` just after `T0`.
async fn end(store: &dyn Store, id: &str, owner: &str, finish: &Finish) -> super::Result<()> {
    let batch = [(id.to_owned(), finish.clone())];
    let rule = DisableRule::default();
    store.finish_batch(owner, &batch, T0 + 1, &rule).await?;
    Ok(())
}

/// How many deliveries `p1` has, in every state.
async fn deliveries_of_p1(store: &dyn Store) -> usize {
    let filter = DeliveryFilter {
        product: Some("p1".to_owned()),
        ..DeliveryFilter::default()
    };
    store.deliveries(&filter).await.unwrap().len()
}

pub async fn a_dead_delivery_falls_back_linked_both_ways(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_dead", "msg_gone"]).await;
    store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    end(store, "msg_dead", "w1", &ended(Status::Dead, "msg_fb1"))
        .await
        .unwrap();
    end(store, "msg_gone", "w1", &ended(Status::Disabled, "msg_fb2"))
        .await
        .unwrap();

    let (dead, _) = store.delivery("msg_dead").await.unwrap().unwrap();
    assert_eq!(dead.status, Status::Dead);
    let to = dead.fell_back_to.expect("linked to its fallback");
    assert_eq!(
        (to.delivery.as_str(), to.instance.as_str()),
        ("msg_fb1", "mail")
    );
    assert!(dead.fallback_for.is_none());
    let (fallback, _) = store.delivery("msg_fb1").await.unwrap().unwrap();
    assert_eq!(
        (fallback.status, fallback.event_id.as_str()),
        (Status::Pending, "evt_1")
    );
    let from = fallback.fallback_for.expect("linked back");
    assert_eq!(
        (from.delivery.as_str(), from.instance.as_str()),
        ("msg_dead", "hook")
    );
    let (gone, _) = store.delivery("msg_gone").await.unwrap().unwrap();
    assert_eq!(
        gone.fell_back_to.map(|l| l.delivery).as_deref(),
        Some("msg_fb2")
    );

    // Both are due at once, and a claim says what each is the fallback for.
    let mut claimed = store
        .claim(Lease::new("w2", T0 + 2, LEASE), 10)
        .await
        .unwrap();
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    let shown: Vec<(&str, Option<&str>)> = claimed
        .iter()
        .map(|c| (c.id.as_str(), c.fallback_for.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [("msg_fb1", Some("msg_dead")), ("msg_fb2", Some("msg_gone"))]
    );
    assert_eq!(claimed[0].payload, r#"{"model":"Item"}"#, "the same event");

    // A retry scheduled is no end: a fallback handed with it is not stored.
    accept_one(store, "evt_2", &["msg_retry"]).await;
    store
        .claim(Lease::new("w3", T0 + 3, LEASE), 10)
        .await
        .unwrap();
    let retry = Finish {
        status: Status::Failed,
        next_at: Some(T0 + 60_000),
        ..ended(Status::Dead, "msg_fb3")
    };
    end(store, "msg_retry", "w3", &retry).await.unwrap();
    assert!(store.delivery("msg_fb3").await.unwrap().is_none());
}

pub async fn a_dead_letter_recorded_twice_falls_back_once(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1"]).await;
    let lease = Duration::from_secs(1);
    store.claim(Lease::new("w1", T0, lease), 10).await.unwrap();
    // w1 stalls past its lease; w2 takes over; both see the dead letter.
    let taken = store
        .claim(Lease::new("w2", T0 + 1_000, lease), 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    end(store, "msg_1", "w2", &ended(Status::Dead, "msg_fb_w2"))
        .await
        .unwrap();
    end(store, "msg_1", "w1", &ended(Status::Dead, "msg_fb_w1"))
        .await
        .unwrap();
    assert!(store.delivery("msg_fb_w2").await.unwrap().is_some());
    assert!(
        store.delivery("msg_fb_w1").await.unwrap().is_none(),
        "the stale owner's dead letter is not recorded, nor its fallback"
    );

    // Redelivered and dead again: it fell back already.
    assert!(store.redeliver("msg_1", T0 + 5_000).await.unwrap());
    let again = store
        .claim(Lease::new("w3", T0 + 5_000, LEASE), 10)
        .await
        .unwrap();
    assert!(again.iter().any(|c| c.id == "msg_1"), "{again:?}");
    end(store, "msg_1", "w3", &ended(Status::Dead, "msg_fb_again"))
        .await
        .unwrap();
    assert!(store.delivery("msg_fb_again").await.unwrap().is_none());
    let (row, _) = store.delivery("msg_1").await.unwrap().unwrap();
    assert_eq!(
        row.fell_back_to.map(|l| l.delivery).as_deref(),
        Some("msg_fb_w2")
    );
    assert_eq!(deliveries_of_p1(store).await, 2);
}

pub async fn a_fallback_never_falls_back(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1"]).await;
    store.claim(Lease::new("w1", T0, LEASE), 10).await.unwrap();
    end(store, "msg_1", "w1", &ended(Status::Dead, "msg_fb"))
        .await
        .unwrap();
    let claimed = store
        .claim(Lease::new("w1", T0 + 2, LEASE), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    end(
        store,
        "msg_fb",
        "w1",
        &ended(Status::Dead, "msg_second_hop"),
    )
    .await
    .unwrap();
    let (fallback, _) = store.delivery("msg_fb").await.unwrap().unwrap();
    assert_eq!(fallback.status, Status::Dead);
    assert!(fallback.fell_back_to.is_none());
    assert!(store.delivery("msg_second_hop").await.unwrap().is_none());
    assert_eq!(deliveries_of_p1(store).await, 2);
}

/// What a crash between the dead letter and its fallback would leave, had they been two
/// writes: here a fallback that cannot be stored (its id is taken) takes the dead
/// letter with it, and the delivery stays leased, to be attempted again.
pub async fn the_dead_letter_and_its_fallback_are_stored_together_or_not_at_all(store: &dyn Store) {
    accept_one(store, "evt_1", &["msg_1", "msg_taken"]).await;
    let lease = Duration::from_secs(1);
    let leased = store.claim(Lease::new("w1", T0, lease), 10).await.unwrap();
    assert_eq!(leased.len(), 2);
    let refused = end(store, "msg_1", "w1", &ended(Status::Dead, "msg_taken")).await;
    assert!(refused.is_err(), "the fallback's id is taken");
    let (row, attempts) = store.delivery("msg_1").await.unwrap().unwrap();
    assert_eq!(
        row.status,
        Status::Pending,
        "no dead letter without its fallback"
    );
    assert!(row.fell_back_to.is_none());
    assert!(attempts.is_empty(), "nothing of that transaction was kept");

    // Its lease runs out; the next attempt ends it, and its fallback, together.
    let again = store
        .claim(Lease::new("w2", T0 + 1_000, LEASE), 10)
        .await
        .unwrap();
    assert!(again.iter().any(|c| c.id == "msg_1"), "{again:?}");
    end(store, "msg_1", "w2", &ended(Status::Dead, "msg_fb"))
        .await
        .unwrap();
    let (row, _) = store.delivery("msg_1").await.unwrap().unwrap();
    assert_eq!(row.status, Status::Dead);
    assert_eq!(
        row.fell_back_to.map(|l| l.delivery).as_deref(),
        Some("msg_fb")
    );
    assert_eq!(deliveries_of_p1(store).await, 3);
}
