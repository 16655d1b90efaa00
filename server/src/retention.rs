//! Retention and erasure: old history pruned in the background (`[worker] retention`,
//! `dead_retention`), on demand (`lookout prune`), and stored payloads erased by product
//! or by a field (`lookout forget`).
//!
//! Removal goes in small batches, one transaction each with a pause between, so the
//! intake's writes are never held up for long; SQLite's freed pages then go back to the
//! file system (incremental vacuum).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::policy::WorkerConfig;
use crate::store::upkeep::{ForgetRule, PruneRule, Removed};
use crate::store::{Millis, Result, Store, millis, now_ms};

/// Events removed per transaction.
pub const BATCH: usize = 1_000;
/// The pause between two batches: room for the intake's writes.
pub const PAUSE: Duration = Duration::from_millis(20);
/// How often the background pruning looks for old history.
pub const EVERY: Duration = Duration::from_secs(3600);

/// What `retention` and `dead_retention` select at `now` (`None`: no retention).
pub fn prune_rule(config: &WorkerConfig, now: Millis) -> Option<PruneRule> {
    let before = now - millis(config.retention?);
    let dead_before = config.dead_retention.map(|kept| now - millis(kept));
    Some(PruneRule {
        before,
        dead_before,
    })
}

/// Removes everything `rule` selects, batch after batch, then reclaims the space.
pub async fn prune(store: &dyn Store, rule: &PruneRule) -> Result<Removed> {
    in_batches(store, || store.prune(rule, BATCH)).await
}

/// Erases everything `rule` selects, batch after batch, then reclaims the space.
pub async fn forget(store: &dyn Store, rule: &ForgetRule) -> Result<Removed> {
    in_batches(store, || store.forget(rule, BATCH)).await
}

/// Runs `batch` (which removes at most [`BATCH`] events) with a [`PAUSE`] in between
/// until a batch comes up short, then reclaims the space: all it removed.
async fn in_batches<F, Batch>(store: &dyn Store, mut batch: F) -> Result<Removed>
where
    F: FnMut() -> Batch,
    Batch: Future<Output = Result<Removed>>,
{
    let mut total = Removed::default();
    loop {
        let removed = batch().await?;
        total += removed;
        if removed.events < BATCH as u64 {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    store.reclaim_space().await?;
    Ok(total)
}

/// Prunes by the configured retention every [`EVERY`] until `stop` turns true (returns
/// at once without a retention).
pub async fn run(
    store: Arc<dyn Store>,
    config: Arc<WorkerConfig>,
    mut stop: watch::Receiver<bool>,
) {
    if config.retention.is_none() {
        return;
    }
    while !*stop.borrow() {
        if let Some(rule) = prune_rule(&config, now_ms()) {
            match prune(store.as_ref(), &rule).await {
                Ok(removed) if removed.events > 0 => tracing::info!(
                    "pruned {} events, {} deliveries, {} attempts",
                    removed.events,
                    removed.deliveries,
                    removed.attempts
                ),
                Ok(_) => {}
                Err(err) => tracing::error!("pruning old history failed: {err}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}
