//! Coalescing and digests on PostgreSQL (server/src/shaping.rs): done in the intake's
//! transaction, right after its deliveries are stored, one shaped delivery after the
//! other in intake order. Rows are changed only by `UPDATE`s whose conditions are
//! checked again under the row's lock: a delivery a claim leased meanwhile is neither
//! superseded nor joined (the new event then starts a stream, or a digest, of its own).

use deadpool_postgres::GenericClient;

use super::{Millis, NewDelivery, NewEvent, Result, execute, lanes_due_by, lock_keys, query};
use super::{release_keys, to_i32};
use crate::shaping::{Arrival, Coalescing, Gathering, Shape};

/// Shapes every shaped delivery of `events` (just stored), in order.
pub(super) async fn shape_stored(tx: &impl GenericClient, events: &[&NewEvent]) -> Result<()> {
    for event in events {
        let arrival = Arrival {
            event_id: &event.id,
            product: &event.product,
            at: event.received_at,
        };
        for delivery in &event.deliveries {
            shape_new(tx, &arrival, delivery).await?;
        }
    }
    Ok(())
}

/// See the SQLite store's `shape_new`.
pub(super) async fn shape_new(
    tx: &impl GenericClient,
    arrival: &Arrival<'_>,
    delivery: &NewDelivery,
) -> Result<()> {
    match &delivery.shape {
        None => Ok(()),
        Some(Shape::Coalesce(coalescing)) => {
            coalesce(tx, &delivery.id, coalescing, arrival.at).await
        }
        Some(Shape::Digest(gathering)) => gather(tx, arrival, delivery, gathering).await,
    }
}

/// See the SQLite store's `coalesce`: the same statements.
async fn coalesce(
    tx: &impl GenericClient,
    id: &str,
    coalescing: &Coalescing,
    at: Millis,
) -> Result<()> {
    let key = &coalescing.key;
    let rows = query(
        tx,
        "UPDATE deliveries SET status = 'superseded', replaced_by = $2, next_at = NULL,
             updated_at = $3
         WHERE shape_key = $1 AND id <> $2 AND status = 'pending' AND attempts = 0
           AND lease_owner IS NULL AND digest_events IS NULL
           AND (next_at IS NULL OR next_at > $3)
         RETURNING window_since, order_key",
        &[&key, &id, &at],
    )
    .await?;
    let mut since = at;
    let mut keys: Vec<String> = Vec::new();
    for row in &rows {
        if let Some(first) = row.try_get::<_, Option<Millis>>(0)? {
            since = since.min(first);
        }
        keys.extend(row.try_get::<_, Option<String>>(1)?);
    }
    let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    lock_keys(tx, &mut keys).await?;
    release_keys(tx, &keys, at).await?;
    let due = coalescing.due(at, since);
    execute(
        tx,
        "UPDATE deliveries SET shape_key = $2, window_since = $3,
             next_at = CASE WHEN next_at IS NULL THEN NULL ELSE $4::bigint END
         WHERE id = $1",
        &[&id, &key, &since, &due],
    )
    .await?;
    Ok(())
}

/// See the SQLite store's `gather`: the same statements.
async fn gather(
    tx: &impl GenericClient,
    arrival: &Arrival<'_>,
    delivery: &NewDelivery,
    gathering: &Gathering,
) -> Result<()> {
    let (key, at) = (&gathering.key, arrival.at);
    let max_events = to_i32(gathering.max_events);
    let joined = query(
        tx,
        "UPDATE deliveries SET digest_events = digest_events + 1, updated_at = $3,
             next_at = CASE WHEN digest_events + 1 >= $2 THEN $3::bigint ELSE next_at END
         WHERE id = (SELECT id FROM deliveries
             WHERE shape_key = $1 AND status = 'pending' AND digest_events IS NOT NULL
               AND digest_events < $2 AND attempts = 0 AND lease_owner IS NULL
               AND next_at > $3
             ORDER BY created_at DESC, seq DESC LIMIT 1)
           AND status = 'pending' AND lease_owner IS NULL AND digest_events < $2
         RETURNING id, lane",
        &[&key, &max_events, &at],
    )
    .await?;
    let digest = match joined.first() {
        Some(row) => {
            let lanes: Vec<String> = row.try_get::<_, Option<String>>(1)?.into_iter().collect();
            lanes_due_by(tx, &lanes, at).await?;
            row.try_get::<_, String>(0)?
        }
        None => {
            let digest = lookout::dispatch::new_delivery_id();
            execute(
                tx,
                "INSERT INTO deliveries (id, event_id, product_id, instance, service, status,
                     next_at, created_at, updated_at, lane, shape_key, digest_events)
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7, $8, $9, 1)",
                &[
                    &digest,
                    &arrival.event_id,
                    &arrival.product,
                    &delivery.instance,
                    &delivery.service,
                    &at.saturating_add(gathering.window_ms),
                    &at,
                    &delivery.lane.key,
                    &key,
                ],
            )
            .await?;
            digest
        }
    };
    execute(
        tx,
        "UPDATE deliveries SET status = 'digested', replaced_by = $2, next_at = NULL
         WHERE id = $1",
        &[&delivery.id, &digest],
    )
    .await?;
    Ok(())
}

/// The payloads of a digest's events, oldest first.
pub(super) async fn digest_payloads(
    client: &impl GenericClient,
    digest: &str,
) -> Result<Vec<String>> {
    let rows = query(
        client,
        "SELECT e.payload FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.replaced_by = $1 AND d.status = 'digested'
         ORDER BY e.received_at, d.seq",
        &[&digest],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}
