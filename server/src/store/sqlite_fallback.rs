//! SQLite's half of fallback routes (see `fallback.rs`).

use rusqlite::{OptionalExtension, Transaction, params};

use super::{INSERT_DELIVERY, insert_delivery, queue_in_lanes};
use crate::store::{Millis, NewDelivery, Result};

/// Stores `fallback`, the delivery to `dead`'s fallback service, due at `now` and linked
/// both ways, in the transaction that records `dead`'s end. Nothing when `dead` is a
/// fallback itself (one hop) or already fell back (once); whether it was stored.
pub(super) fn enqueue_in(
    tx: &Transaction<'_>,
    dead: &str,
    fallback: &NewDelivery,
    now: Millis,
) -> Result<bool> {
    let found: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT event_id, product_id FROM deliveries
             WHERE id = ?1 AND fallback_for IS NULL AND fell_back_to IS NULL",
        )?
        .query_row([dead], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((event, product)) = found else {
        return Ok(false);
    };
    insert_delivery(tx, INSERT_DELIVERY, &event, &product, fallback, now)?;
    tx.prepare_cached("UPDATE deliveries SET fallback_for = ?2 WHERE id = ?1")?
        .execute(params![fallback.id, dead])?;
    tx.prepare_cached("UPDATE deliveries SET fell_back_to = ?2 WHERE id = ?1")?
        .execute(params![dead, fallback.id])?;
    queue_in_lanes(tx, &product, [fallback], now)?;
    Ok(true)
}
