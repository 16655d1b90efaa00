//! PostgreSQL's half of fallback routes (see `fallback.rs`).

use deadpool_postgres::GenericClient;

use super::{execute, insert_deliveries, notify_due, query};
use crate::store::{Millis, NewDelivery, Result};

/// Stores each `(dead, fallback)`: the delivery to `dead`'s fallback service, due at
/// `now` and linked both ways, in the transaction that records `dead`'s end (whose
/// update holds `dead`'s row until the commit: no other worker records it meanwhile).
/// Nothing for a `dead` that is a fallback itself (one hop) or already fell back (once).
pub(super) async fn enqueue(
    tx: &impl GenericClient,
    fallbacks: &[(&str, &NewDelivery)],
    now: Millis,
) -> Result<()> {
    let mut added = 0;
    for &(dead, fallback) in fallbacks {
        let found = query(
            tx,
            "SELECT event_id, product_id FROM deliveries
             WHERE id = $1 AND fallback_for IS NULL AND fell_back_to IS NULL",
            &[&dead],
        )
        .await?;
        let Some(row) = found.first() else {
            continue;
        };
        let (event, product): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        let queued = [(event.as_str(), product.as_str(), fallback, now)];
        added += insert_deliveries(tx, &[], &queued, false).await?;
        let link = "UPDATE deliveries SET fallback_for = $2 WHERE id = $1";
        execute(tx, link, &[&fallback.id, &dead]).await?;
        let back = "UPDATE deliveries SET fell_back_to = $2 WHERE id = $1";
        execute(tx, back, &[&dead, &fallback.id]).await?;
    }
    if added > 0 {
        notify_due(tx).await?;
    }
    Ok(())
}
