//! Coalescing and digests on SQLite (server/src/shaping.rs): done in the intake's
//! transaction, right after a shaped delivery is stored, so that nothing is ever half
//! replaced or half gathered.

use rusqlite::{OptionalExtension, params};

use super::{Millis, NewDelivery, Result, lane_due_by, release_key};
use crate::shaping::{Arrival, Coalescing, Gathering, Shape};

/// Shapes `delivery`, just stored on its arrival: replaces the queued deliveries of its
/// coalescing key, or puts it into its service's open digest.
pub(super) fn shape_new(
    tx: &rusqlite::Transaction<'_>,
    arrival: &Arrival<'_>,
    delivery: &NewDelivery,
) -> Result<()> {
    match &delivery.shape {
        None => Ok(()),
        Some(Shape::Coalesce(coalescing)) => coalesce(tx, &delivery.id, coalescing, arrival.at),
        Some(Shape::Digest(gathering)) => gather(tx, arrival, delivery, gathering),
    }
}

/// Supersedes every queued delivery of `key` that was never attempted and is still in
/// its window (or held behind an earlier one of its order key), and makes `id` due at
/// the end of its own window, within `max_wait` of the stream's first event.
fn coalesce(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    coalescing: &Coalescing,
    at: Millis,
) -> Result<()> {
    let key = &coalescing.key;
    let replaced: Vec<(Option<Millis>, Option<String>)> = super::select(
        tx,
        "UPDATE deliveries SET status = 'superseded', replaced_by = ?2, next_at = NULL,
             updated_at = ?3
         WHERE shape_key = ?1 AND id != ?2 AND status = 'pending' AND attempts = 0
           AND lease_owner IS NULL AND digest_events IS NULL
           AND (next_at IS NULL OR next_at > ?3)
         RETURNING window_since, order_key",
        params![key, id, at],
        |row| row.try_into(),
    )?;
    let since = replaced.iter().filter_map(|r| r.0).min().unwrap_or(at);
    // The replaced one may have been first of its order key: the next goes on (this
    // one, unless one of the key is in flight).
    let mut keys: Vec<&String> = replaced.iter().filter_map(|r| r.1.as_ref()).collect();
    keys.sort();
    keys.dedup();
    for order_key in keys {
        release_key(tx, order_key, at)?;
    }
    let due = coalescing.due(at, since);
    tx.prepare_cached(
        "UPDATE deliveries SET shape_key = ?2, window_since = ?3,
             next_at = CASE WHEN next_at IS NULL THEN NULL ELSE ?4 END
         WHERE id = ?1",
    )?
    .execute(params![id, key, since, due])?;
    Ok(())
}

/// Puts the event of `delivery` into its service's open digest (one that is not due
/// yet, was never attempted and has room), or opens one due `window` from now; the
/// delivery itself ends `digested`, linked to the digest.
fn gather(
    tx: &rusqlite::Transaction<'_>,
    arrival: &Arrival<'_>,
    delivery: &NewDelivery,
    gathering: &Gathering,
) -> Result<()> {
    let (key, at) = (&gathering.key, arrival.at);
    let joined: Option<(String, Option<String>)> = tx
        .prepare_cached(
            "UPDATE deliveries SET digest_events = digest_events + 1, updated_at = ?3,
                 next_at = CASE WHEN digest_events + 1 >= ?2 THEN ?3 ELSE next_at END
             WHERE id = (SELECT id FROM deliveries
                 WHERE shape_key = ?1 AND status = 'pending' AND digest_events IS NOT NULL
                   AND digest_events < ?2 AND attempts = 0 AND lease_owner IS NULL
                   AND next_at > ?3
                 ORDER BY created_at DESC, rowid DESC LIMIT 1)
             RETURNING id, lane",
        )?
        .query_row(params![key, gathering.max_events, at], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let digest = match joined {
        Some((digest, lane)) => {
            if let Some(lane) = lane {
                lane_due_by(tx, &lane, at)?;
            }
            digest
        }
        None => {
            let digest = lookout::dispatch::new_delivery_id();
            tx.prepare_cached(
                "INSERT INTO deliveries (id, event_id, product_id, instance, service, status,
                     next_at, created_at, updated_at, lane, shape_key, digest_events)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7, ?8, ?9, 1)",
            )?
            .execute(params![
                digest,
                arrival.event_id,
                arrival.product,
                delivery.instance,
                delivery.service,
                at.saturating_add(gathering.window_ms),
                at,
                delivery.lane.key,
                key
            ])?;
            digest
        }
    };
    tx.prepare_cached(
        "UPDATE deliveries SET status = 'digested', replaced_by = ?2, next_at = NULL
         WHERE id = ?1",
    )?
    .execute(params![delivery.id, digest])?;
    Ok(())
}

/// The payloads of a digest's events, oldest first.
pub(super) fn digest_payloads(conn: &rusqlite::Connection, digest: &str) -> Result<Vec<String>> {
    super::select(
        conn,
        "SELECT e.payload FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.replaced_by = ?1 AND d.status = 'digested'
         ORDER BY e.received_at, d.rowid",
        [digest],
        |row| row.get(0),
    )
}
