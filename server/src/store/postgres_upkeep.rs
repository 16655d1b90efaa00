//! [`Upkeep`] for the PostgreSQL store: target health, alerts, retention.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::{PostgresStore, execute, query};
use crate::store::sql;
use crate::store::upkeep::{
    AlertSlot, DisableRule, Enabled, Fared, ForgetRule, InstanceKey, PruneRule, Removed,
    TargetResult, Upkeep,
};
use crate::store::{DisabledTarget, Millis, Result, millis};

/// Removes these events with their deliveries and attempts (the caller's transaction is
/// one batch, so the intake never waits long).
async fn remove_events(client: &impl GenericClient, ids: &[String]) -> Result<Removed> {
    // A queued delivery removed may be the one its order key's next waits for.
    let rows = query(
        client,
        "SELECT DISTINCT order_key FROM deliveries WHERE event_id = ANY($1)
             AND order_key IS NOT NULL AND status IN ('pending', 'failed')",
        &[&ids],
    )
    .await?;
    let held: Vec<String> = super::ids_of(&rows)?;
    let mut keys: Vec<&str> = held.iter().map(String::as_str).collect();
    super::lock_keys(client, &mut keys).await?;
    let attempts = execute(
        client,
        "DELETE FROM attempts WHERE delivery_id IN
             (SELECT id FROM deliveries WHERE event_id = ANY($1))",
        &[&ids],
    )
    .await?;
    let deliveries = execute(
        client,
        "DELETE FROM deliveries WHERE event_id = ANY($1)",
        &[&ids],
    )
    .await?;
    let events = execute(client, "DELETE FROM events WHERE id = ANY($1)", &[&ids]).await?;
    super::release_keys(client, &keys, crate::store::now_ms()).await?;
    Ok(Removed {
        events,
        deliveries,
        attempts,
    })
}

/// Counts the failures among how each target of a product's instance fared in one
/// attempt (see [`Store::finish_batch`](crate::store::Store::finish_batch); the answers
/// are cleared for the whole batch at once); the targets that now meet `rule` are
/// disabled.
pub(super) async fn record_failures(
    tx: &impl GenericClient,
    fared: &Fared<'_>,
    rule: &DisableRule,
) -> Result<Vec<DisabledTarget>> {
    let mut disabled = Vec::new();
    for (result, error) in fared.failed() {
        let Some(counted) = count_failure(tx, fared, result, error).await? else {
            continue;
        };
        if let Some(target) = rule.disables(fared, result, counted) {
            let (product, instance) = (fared.product, fared.instance);
            let shown = (&target.key, &target.target, &target.reason, &target.at);
            let args: [&(dyn ToSql + Sync); 6] =
                [&product, &instance, shown.0, shown.1, shown.2, shown.3];
            execute(tx, sql::DISABLE_TARGET, &args).await?;
            execute(tx, sql::TARGET_HEALTHY, &[&product, &instance, &result.key]).await?;
            disabled.push(target);
        }
    }
    Ok(disabled)
}

/// Adds one to a target's failures in a row: how many now, and when the first was.
async fn count_failure(
    tx: &impl GenericClient,
    fared: &Fared<'_>,
    result: &TargetResult,
    error: &str,
) -> Result<Option<(u32, Millis)>> {
    let (product, instance) = (&fared.product, &fared.instance);
    let (key, target, now) = (&result.key, &result.target, &fared.now);
    let args: [&(dyn ToSql + Sync); 6] = [product, instance, key, target, now, &error];
    let rows = query(tx, sql::COUNT_FAILURE, &args).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let failures: i32 = row.try_get(0)?;
    let first: i64 = row.try_get(1)?;
    Ok(Some((u32::try_from(failures).unwrap_or(0), first)))
}

#[async_trait]
impl Upkeep for PostgresStore {
    async fn enable_targets(
        &self,
        of: InstanceKey<'_>,
        redeliver_at: Option<Millis>,
    ) -> Result<Enabled> {
        let (product, instance) = (of.product, of.instance);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let targets = execute(&tx, sql::FORGET_DISABLED, &[&product, &instance]).await?;
        execute(&tx, sql::FORGET_HEALTH, &[&product, &instance]).await?;
        let mut redelivered = 0;
        if let Some(now) = redeliver_at {
            let rows = query(&tx, sql::ENDED_DELIVERIES, &[&product, &instance]).await?;
            redelivered = super::redeliver_in(&tx, &super::ids_of(&rows)?, now).await?;
        }
        tx.commit().await?;
        Ok(Enabled {
            targets,
            redelivered,
        })
    }

    async fn set_alerts(&self, product: &str, alerts: Option<&str>) -> Result<bool> {
        let changed = execute(
            &self.client().await?,
            "UPDATE products SET alerts = $2, generation = nextval('products_generation')
             WHERE id = $1",
            &[&product, &alerts],
        )
        .await?;
        Ok(changed > 0)
    }

    async fn take_alert_slot(&self, slot: AlertSlot<'_>, now: Millis) -> Result<bool> {
        let since = now - millis(slot.every);
        let taken = query(
            &self.client().await?,
            "INSERT INTO alerts_sent AS a (product_id, instance, target_key, sent_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (product_id, instance, target_key) DO UPDATE
                 SET sent_at = excluded.sent_at WHERE a.sent_at <= $5
             RETURNING sent_at",
            &[&slot.product, &slot.instance, &slot.key, &now, &since],
        )
        .await?;
        Ok(!taken.is_empty())
    }

    async fn prune(&self, rule: &PruneRule, limit: usize) -> Result<Removed> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = query(
            &tx,
            "SELECT e.id FROM events e WHERE e.received_at < $1 AND NOT EXISTS (
                 SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND (
                     d.status IN ('pending', 'failed')
                     OR (d.status = 'dead' AND ($2::BIGINT IS NULL OR d.updated_at >= $2))))
             LIMIT $3
             FOR UPDATE SKIP LOCKED",
            &[&rule.before, &rule.dead_before, &limit],
        )
        .await?;
        let removed = remove_events(&tx, &super::ids_of(&rows)?).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn forget(&self, rule: &ForgetRule, limit: usize) -> Result<Removed> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (path, value) = match &rule.field {
            Some((segments, value)) => (Some(segments.clone()), Some(value.clone())),
            None => (None, None),
        };
        let rows = query(
            &tx,
            "SELECT id FROM events WHERE ($1::TEXT IS NULL OR product_id = $1)
                 AND ($2::TEXT[] IS NULL OR payload::jsonb #>> $2 = $3)
             LIMIT $4",
            &[&rule.product, &path, &value, &limit],
        )
        .await?;
        let removed = remove_events(&tx, &super::ids_of(&rows)?).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn reclaim_space(&self) -> Result<()> {
        // Autovacuum makes the space of deleted rows reusable; nothing to do here.
        Ok(())
    }
}
