//! [`Upkeep`] for the SQLite store: target health, alerts, retention.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{SqliteStore, backend};
use crate::store::sql;
use crate::store::upkeep::{
    AlertSlot, DisableRule, Enabled, Fared, ForgetRule, InstanceKey, PruneRule, Removed, Upkeep,
};
use crate::store::{DisabledTarget, Millis, Result, millis};

/// Removes these events with their deliveries and attempts (the caller's transaction is
/// one batch, so the intake never waits long).
fn remove_events(tx: &Transaction<'_>, ids: &[String]) -> Result<Removed> {
    let mut removed = Removed::default();
    let mut keys = Vec::new();
    for id in ids {
        // A queued delivery removed may be the one its order key's next waits for.
        keys.extend(select_ids(
            tx,
            "SELECT order_key FROM deliveries WHERE event_id = ?1 AND order_key IS NOT NULL
                 AND status IN ('pending', 'failed')",
            [id],
        )?);
        removed.attempts += tx.execute(
            "DELETE FROM attempts WHERE delivery_id IN
                 (SELECT id FROM deliveries WHERE event_id = ?1)",
            [id],
        )? as u64;
        removed.deliveries +=
            tx.execute("DELETE FROM deliveries WHERE event_id = ?1", [id])? as u64;
        removed.events += tx.execute("DELETE FROM events WHERE id = ?1", [id])? as u64;
    }
    let now = crate::store::now_ms();
    for key in &keys {
        super::release_key(tx, key, now)?;
    }
    Ok(removed)
}

fn select_ids(
    tx: &Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<String>> {
    super::select(tx, sql, params, |row| row.get(0))
}

/// `$.attributes.created_by.id`, for `json_extract` (the segments are plain names).
fn json_path(segments: &[String]) -> String {
    format!("$.{}", segments.join("."))
}

/// How each target of a product's instance fared in one attempt (see
/// [`Store::finish_batch`](crate::store::Store::finish_batch)): an answer clears its
/// failures, a failure adds one; the targets that now meet `rule` are disabled.
pub(super) fn record_health(
    tx: &Transaction<'_>,
    fared: &Fared<'_>,
    rule: &DisableRule,
) -> Result<Vec<DisabledTarget>> {
    let (product, instance) = (fared.product, fared.instance);
    let healthy = |key: &str| -> Result<()> {
        let mut statement = tx.prepare_cached(sql::TARGET_HEALTHY)?;
        statement.execute(params![product, instance, key])?;
        Ok(())
    };
    for result in fared.answered() {
        healthy(&result.key)?;
    }
    let mut disabled = Vec::new();
    for (result, error) in fared.failed() {
        let counted = tx.prepare_cached(sql::COUNT_FAILURE)?.query_row(
            params![
                product,
                instance,
                result.key,
                result.target,
                fared.now,
                error
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        if let Some(target) = rule.disables(fared, result, counted) {
            super::disable_target(tx, product, &target)?;
            healthy(&result.key)?;
            disabled.push(target);
        }
    }
    Ok(disabled)
}

#[async_trait]
impl Upkeep for SqliteStore {
    async fn enable_targets(
        &self,
        of: InstanceKey<'_>,
        redeliver_at: Option<Millis>,
    ) -> Result<Enabled> {
        let (product, instance) = (of.product.to_owned(), of.instance.to_owned());
        self.write(move |tx| {
            let mut enabled = Enabled {
                targets: tx.execute(sql::FORGET_DISABLED, params![product, instance])? as u64,
                redelivered: 0,
            };
            tx.execute(sql::FORGET_HEALTH, params![product, instance])?;
            if let Some(now) = redeliver_at {
                let ids = select_ids(tx, sql::ENDED_DELIVERIES, params![product, instance])?;
                for id in &ids {
                    super::redeliver_in(tx, id, now)?;
                }
                enabled.redelivered = ids.len() as u64;
            }
            Ok(enabled)
        })
        .await
    }

    async fn set_alerts(&self, product: &str, alerts: Option<&str>) -> Result<bool> {
        let (product, alerts) = (product.to_owned(), alerts.map(str::to_owned));
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE products SET alerts = ?2 WHERE id = ?1",
                params![product, alerts],
            )?;
            super::bump_generation(tx, &product)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn take_alert_slot(&self, slot: AlertSlot<'_>, now: Millis) -> Result<bool> {
        let owned = |text: &str| text.to_owned();
        let (product, instance, key) = (owned(slot.product), owned(slot.instance), owned(slot.key));
        let since = now - millis(slot.every);
        self.call(move |conn| {
            let taken: Option<Millis> = conn
                .query_row(
                    "INSERT INTO alerts_sent (product_id, instance, target_key, sent_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (product_id, instance, target_key) DO UPDATE
                         SET sent_at = excluded.sent_at WHERE sent_at <= ?5
                     RETURNING sent_at",
                    params![product, instance, key, now, since],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(taken.is_some())
        })
        .await
    }

    async fn prune(&self, rule: &PruneRule, limit: usize) -> Result<Removed> {
        let rule = *rule;
        self.write(move |tx| {
            let ids = select_ids(
                tx,
                "SELECT e.id FROM events e WHERE e.received_at < ?1 AND NOT EXISTS (
                     SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND (
                         d.status IN ('pending', 'failed')
                         OR (d.status = 'dead' AND (?2 IS NULL OR d.updated_at >= ?2))))
                 LIMIT ?3",
                params![rule.before, rule.dead_before, limit as i64],
            )?;
            remove_events(tx, &ids)
        })
        .await
    }

    async fn forget(&self, rule: &ForgetRule, limit: usize) -> Result<Removed> {
        let rule = rule.clone();
        self.write(move |tx| {
            let (path, value) = match &rule.field {
                Some((segments, value)) => (Some(json_path(segments)), Some(value.clone())),
                None => (None, None),
            };
            let ids = select_ids(
                tx,
                "SELECT id FROM events WHERE (?1 IS NULL OR product_id = ?1)
                     AND (?2 IS NULL OR CAST(json_extract(payload, ?2) AS TEXT) = ?3)
                 LIMIT ?4",
                params![rule.product, path, value, limit as i64],
            )?;
            remove_events(tx, &ids)
        })
        .await
    }

    async fn reclaim_space(&self) -> Result<()> {
        self.call(|conn| {
            let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))?;
            if mode != 2 {
                // A file made before incremental vacuum was on: convert it once (this
                // rewrites the whole file, as a VACUUM does).
                conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
                conn.execute_batch("VACUUM")?;
            }
            // Each step of the pragma frees one page: run it to the end.
            let mut statement = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut steps = statement.query([])?;
            while steps.next()?.is_some() {}
            drop(steps);
            drop(statement);
            // The pages leave the main file at the checkpoint.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto_vacuum(path: &std::path::Path) -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn new_files_vacuum_incrementally_and_older_ones_are_converted_once() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        drop(SqliteStore::open(&new).await.unwrap());
        assert_eq!(auto_vacuum(&new), 2, "INCREMENTAL");

        let old = dir.path().join("old.db");
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch("CREATE TABLE before_lookout (x INTEGER)")
            .unwrap();
        drop(conn);
        let store = SqliteStore::open(&old).await.unwrap();
        assert_eq!(auto_vacuum(&old), 0, "too late for the pragma alone");
        store.reclaim_space().await.unwrap();
        assert_eq!(auto_vacuum(&old), 2, "converted by one VACUUM");
    }
}
