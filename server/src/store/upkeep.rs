//! What keeps an outbox healthy over years, beside the delivery path: each target's
//! health (a target that fails every attempt for long enough is disabled), a product's
//! alerts service and how often it may be told, and retention (pruning old history,
//! erasing what an operator names). Every store implements [`Upkeep`] next to
//! [`Store`](super::Store); the SQL is in `sqlite_upkeep.rs` and `postgres_upkeep.rs`.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::{DisabledTarget, Millis, Result, millis};

/// When a target that keeps failing is disabled: after `failures` failed requests in a
/// row that span at least `over` (the first of them at least that long ago).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisableRule {
    pub failures: u32,
    pub over: Duration,
}

impl Default for DisableRule {
    /// Ten failures in a row over at least a day: longer than the default retry
    /// schedule of one delivery, so one unlucky event never disables a target.
    fn default() -> Self {
        DisableRule {
            failures: 10,
            over: Duration::from_secs(24 * 3600),
        }
    }
}

impl DisableRule {
    /// The target that `result` failed to reach, to be disabled now if its `failures`
    /// in a row, the first at `first_failure_at`, meet this rule.
    pub fn disables(
        &self,
        fared: &Fared<'_>,
        result: &TargetResult,
        (failures, first_failure_at): (u32, Millis),
    ) -> Option<DisabledTarget> {
        let last_error = result.failure.as_deref()?;
        let now = fared.now;
        if failures < self.failures || now - first_failure_at < millis(self.over) {
            return None;
        }
        Some(DisabledTarget {
            instance: fared.instance.to_owned(),
            key: result.key.clone(),
            target: result.target.clone(),
            reason: self.reason(failures, last_error),
            at: now,
        })
    }

    /// The reason recorded for a target this rule disabled.
    fn reason(&self, failures: u32, last_error: &str) -> String {
        format!(
            "failed {failures} attempts in a row over {} or more (last: {last_error})",
            humantime::format_duration(self.over)
        )
    }
}

/// How one target fared in one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetResult {
    /// [`target_key`](lookout::service::Outgoing::target_key) of the request.
    pub key: String,
    /// Where it went, redacted.
    pub target: String,
    /// Why it failed; `None`: it succeeded.
    pub failure: Option<String>,
}

/// How the targets of a product's instance fared in one attempt finished `now`: what
/// [`Store::finish_batch`](crate::store::Store::finish_batch) records of their health.
#[derive(Debug, Clone, Copy)]
pub struct Fared<'a> {
    pub product: &'a str,
    pub instance: &'a str,
    pub results: &'a [TargetResult],
    pub now: Millis,
}

impl<'a> Fared<'a> {
    /// The targets that answered.
    pub fn answered(&self) -> impl Iterator<Item = &'a TargetResult> + use<'a> {
        self.results.iter().filter(|r| r.failure.is_none())
    }

    /// The targets that failed, with why.
    pub fn failed(&self) -> impl Iterator<Item = (&'a TargetResult, &'a str)> + use<'a> {
        self.results
            .iter()
            .filter_map(|r| Some((r, r.failure.as_deref()?)))
    }
}

/// What [`Upkeep::enable_targets`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Enabled {
    /// Targets enabled again.
    pub targets: u64,
    /// Dead or disabled deliveries of the instance made due again.
    pub redelivered: u64,
}

/// Which history [`Upkeep::prune`] removes: events every delivery of which is finished
/// (delivered, skipped, disabled) and that were received before `before`. An event with
/// a dead delivery is kept until it is redelivered, or, with `dead_before`, until the
/// dead delivery was last touched before that time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRule {
    pub before: Millis,
    pub dead_before: Option<Millis>,
}

/// Which events [`Upkeep::forget`] erases (queued or not): a product's, and/or those
/// whose payload has `value` at the JSON `path` (`attributes.created_by.id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetRule {
    pub product: Option<String>,
    pub field: Option<(Vec<String>, String)>,
}

impl ForgetRule {
    /// Parses `--where PATH=VALUE`: a dotted path of plain names, and the value as text
    /// (a JSON number or string with that text matches).
    pub fn parse_where(text: &str) -> std::result::Result<(Vec<String>, String), String> {
        let (path, value) = text
            .split_once('=')
            .ok_or_else(|| format!("--where `{text}`: expected PATH=VALUE"))?;
        let segments: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
        let plain =
            |s: &String| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !segments.iter().all(plain) {
            return Err(format!(
                "--where `{path}`: the path must be dotted names (attributes.created_by.id)"
            ));
        }
        Ok((segments, value.trim().to_owned()))
    }
}

/// Rows removed by a prune or an erasure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, other: Removed) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
    }
}

/// A configured service (an instance) of a product.
#[derive(Debug, Clone, Copy)]
pub struct InstanceKey<'a> {
    pub product: &'a str,
    pub instance: &'a str,
}

/// What alerts are limited by: one per `every` about a target of a product's instance.
#[derive(Debug, Clone, Copy)]
pub struct AlertSlot<'a> {
    pub product: &'a str,
    pub instance: &'a str,
    /// The target's key.
    pub key: &'a str,
    pub every: Duration,
}

#[async_trait]
pub trait Upkeep {
    /// Enables every disabled target of a product's instance again (and forgets its
    /// failures); with `redeliver_at`, makes its dead and disabled deliveries due then,
    /// in the same transaction.
    async fn enable_targets(
        &self,
        of: InstanceKey<'_>,
        redeliver_at: Option<Millis>,
    ) -> Result<Enabled>;

    /// Names the instance of the product told about disabled targets and dead
    /// deliveries (`None`: nobody). False if there is no such product.
    async fn set_alerts(&self, product: &str, alerts: Option<&str>) -> Result<bool>;

    /// Whether an alert about this target may go out now: true at most once per the
    /// slot's `every`, shared by every process of the store.
    async fn take_alert_slot(&self, slot: AlertSlot<'_>, now: Millis) -> Result<bool>;

    /// Removes up to `limit` events that `rule` selects, with their deliveries and
    /// attempts, in one transaction.
    async fn prune(&self, rule: &PruneRule, limit: usize) -> Result<Removed>;

    /// Erases up to `limit` events that `rule` selects, with their deliveries and
    /// attempts, in one transaction.
    async fn forget(&self, rule: &ForgetRule, limit: usize) -> Result<Removed>;

    /// Gives the space of removed rows back to the file system where the database can
    /// (SQLite's incremental vacuum; PostgreSQL's autovacuum does it by itself).
    async fn reclaim_space(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_clauses_are_dotted_names_and_a_value() {
        let (path, value) = ForgetRule::parse_where("attributes.created_by.id=1111").unwrap();
        assert_eq!(path, ["attributes", "created_by", "id"]);
        assert_eq!(value, "1111");
        for bad in ["attributes.created_by.id", "a..b=1", "a['x']=1", "=1"] {
            let err = ForgetRule::parse_where(bad).unwrap_err();
            assert!(err.starts_with("--where"), "{err}");
        }
    }
}
