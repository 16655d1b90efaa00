//! SQL that SQLite and PostgreSQL both take as it is, written once for both stores.
//!
//! Parameters are `$1`, `$2`, … in the order they first appear: PostgreSQL binds them by
//! number, SQLite numbers named parameters (`$N` is one to it) in the order it meets
//! them, so the two agree only in that order (a test below checks every text).

/// A product's service, added or replaced ($1 product, $2 name, $3 service, $4 options).
pub(super) const PUT_INSTANCE: &str = "INSERT INTO instances (product_id, name, service, options)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (product_id, name) DO UPDATE SET service = excluded.service,
    options = excluded.options";

/// Removes every service of a product ($1 product); [`REMOVE_DISABLED`] the targets they
/// had disabled.
pub(super) const REMOVE_INSTANCES: &str = "DELETE FROM instances WHERE product_id = $1";

/// Forgets every disabled target of a product ($1 product).
pub(super) const REMOVE_DISABLED: &str = "DELETE FROM disabled_targets WHERE product_id = $1";

/// Removes a product ($1 id), once its services are removed.
pub(super) const REMOVE_PRODUCT: &str = "DELETE FROM products WHERE id = $1";

/// A product's alerts instance and config generation ($1 product).
pub(super) const PRODUCT_SETTINGS: &str = "SELECT alerts, generation FROM products WHERE id = $1";

/// A product's services, by name ($1 product).
pub(super) const PRODUCT_INSTANCES: &str =
    "SELECT name, service, options FROM instances WHERE product_id = $1 ORDER BY name";

/// The product of a stored event ($1 event).
pub(super) const PRODUCT_OF_EVENT: &str = "SELECT product_id FROM events WHERE id = $1";

/// A product's disabled targets ($1 product).
pub(super) const PRODUCT_DISABLED: &str = "SELECT instance, target_key, target, reason, at
    FROM disabled_targets
    WHERE product_id = $1 ORDER BY instance, at";

/// Takes an idempotency key for an event, or takes over one older than `$7` (see
/// `claim_key` in each store).
pub(super) const CLAIM_IDEMPOTENCY_KEY: &str = "INSERT INTO idempotency_keys
    (product_id, key, digest, event_id, answer, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (product_id, key) DO UPDATE SET digest = excluded.digest,
    event_id = excluded.event_id, answer = excluded.answer, created_at = excluded.created_at
    WHERE idempotency_keys.created_at < $7
    RETURNING event_id";

/// What the first event of an idempotency key was answered ($1 product, $2 key).
pub(super) const SAVED_ANSWER: &str =
    "SELECT digest, answer FROM idempotency_keys WHERE product_id = $1 AND key = $2";

/// Lanes as a claim reads them: each with its destination's schedule and its attempts
/// in flight at `$1` (`lane_row` in each store: the fields of a `DueLane` in order,
/// then its pace).
pub(super) const LANES_AT: &str = "SELECT l.key, l.destination, COALESCE(p.tat, 0),
    l.latency_ms, l.due_at, l.cap,
    (SELECT COUNT(*) FROM deliveries d WHERE d.lane = l.key
    AND d.lease_owner IS NOT NULL AND d.lease_until > $1),
    l.every_ms, l.burst
    FROM lanes l LEFT JOIN paces p ON p.destination = l.destination";

/// The columns of a delivery as listed (`delivery_row` in each store): the fields of a
/// `DeliveryRow` in order, then its attempts, digest size and status, and last its
/// fallback links (each an id and its instance, read with `fallback::link`).
pub(super) const DELIVERY_COLUMNS: &str = "id, event_id, product_id, instance, service,
    next_at, created_at, updated_at, last_error, order_key IS NOT NULL, replaced_by,
    attempts, digest_events, status,
    fell_back_to, (SELECT f.instance FROM deliveries f WHERE f.id = deliveries.fell_back_to),
    fallback_for, (SELECT f.instance FROM deliveries f WHERE f.id = deliveries.fallback_for)";

/// A destination's pace after a claim took from it ($1 destination, $2 its theoretical
/// arrival time).
pub(super) const PUT_PACE: &str = "INSERT INTO paces (destination, tat) VALUES ($1, $2)
    ON CONFLICT (destination) DO UPDATE SET tat = excluded.tat";

/// Where a delivery stands, for [`Store::waiting`](super::Store::waiting) ($1 id).
pub(super) const DELIVERY_STATE: &str =
    "SELECT status, next_at, lease_until, lane, order_key FROM deliveries WHERE id = $1";

/// A new API token, its secret kept as a digest.
pub(super) const PUT_TOKEN: &str =
    "INSERT INTO tokens (id, digest, scope, products, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6)";

/// A portal link, kept so that it can be listed and revoked.
pub(super) const PUT_LINK: &str = "INSERT INTO portal_links (id, product, created_at, expires_at)
    VALUES ($1, $2, $3, $4)";

/// The row `/healthz` writes to prove the store takes writes ($1 now).
pub(super) const MARK_WRITABLE: &str = "INSERT INTO health (id, checked_at) VALUES (1, $1)
    ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";

/// A product's attempts per minute and outcome since `$3` ($1 product, $2 the minute of
/// `$3`): the minute bounds the index range, `at` keeps the exact start
/// ([`Activity::counts`](super::Activity::counts)).
pub(super) const ACTIVITY_COUNTS: &str = "SELECT minute, outcome, COUNT(*) FROM attempts
    WHERE product_id = $1 AND minute >= $2 AND at >= $3
    GROUP BY minute, outcome ORDER BY minute, outcome";

/// The durations of a product's attempts since `$3`, newest first, at most `$4` ($1
/// product, $2 the minute of `$3`).
pub(super) const RECENT_DURATIONS: &str = "SELECT at, duration_ms FROM attempts
    WHERE product_id = $1 AND minute >= $2 AND at >= $3 ORDER BY at DESC LIMIT $4";

/// A product's deliveries by status ($1 product).
pub(super) const STATUS_COUNTS: &str =
    "SELECT status, COUNT(*) FROM deliveries WHERE product_id = $1 GROUP BY status";

/// Forgets the failures in a row of one target (it answered, or it is disabled now):
/// $1 product, $2 instance, $3 target key.
pub(super) const TARGET_HEALTHY: &str =
    "DELETE FROM target_health WHERE product_id = $1 AND instance = $2 AND target_key = $3";

/// Counts one more failure of a target ($1 product, $2 instance, $3 target key, $4 the
/// target as shown, $5 now, $6 the error): its failures in a row and the first one's
/// time.
pub(super) const COUNT_FAILURE: &str = "INSERT INTO target_health AS h
    (product_id, instance, target_key, target,
    failures, first_failure_at, last_error)
    VALUES ($1, $2, $3, $4, 1, $5, $6)
    ON CONFLICT (product_id, instance, target_key) DO UPDATE SET
    failures = h.failures + 1, target = excluded.target,
    last_error = excluded.last_error
    RETURNING failures, first_failure_at";

/// Disables a target ($1 product, $2 instance, $3 target key, $4 the target as shown,
/// $5 why, $6 when), or says so again.
pub(super) const DISABLE_TARGET: &str = "INSERT INTO disabled_targets
    (product_id, instance, target_key, target, reason, at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (product_id, instance, target_key)
    DO UPDATE SET target = excluded.target, reason = excluded.reason,
    at = excluded.at";

/// Forgets an instance's disabled targets: they are enabled again ($1 product, $2
/// instance).
pub(super) const FORGET_DISABLED: &str =
    "DELETE FROM disabled_targets WHERE product_id = $1 AND instance = $2";

/// Forgets the failures of an instance's targets ($1 product, $2 instance).
pub(super) const FORGET_HEALTH: &str =
    "DELETE FROM target_health WHERE product_id = $1 AND instance = $2";

/// An instance's deliveries that ended dead or disabled ($1 product, $2 instance).
pub(super) const ENDED_DELIVERIES: &str = "SELECT id FROM deliveries
    WHERE product_id = $1 AND instance = $2 AND status IN ('dead', 'disabled')";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text of this module, for the test of its parameters.
    const ALL: &[&str] = &[
        PUT_INSTANCE,
        REMOVE_INSTANCES,
        REMOVE_DISABLED,
        REMOVE_PRODUCT,
        PRODUCT_SETTINGS,
        PRODUCT_INSTANCES,
        PRODUCT_OF_EVENT,
        PRODUCT_DISABLED,
        CLAIM_IDEMPOTENCY_KEY,
        SAVED_ANSWER,
        LANES_AT,
        DELIVERY_COLUMNS,
        PUT_PACE,
        DELIVERY_STATE,
        PUT_TOKEN,
        PUT_LINK,
        MARK_WRITABLE,
        ACTIVITY_COUNTS,
        RECENT_DURATIONS,
        STATUS_COUNTS,
        TARGET_HEALTHY,
        COUNT_FAILURE,
        DISABLE_TARGET,
        FORGET_DISABLED,
        FORGET_HEALTH,
        ENDED_DELIVERIES,
    ];

    /// `$N` first appears after `$1` … `$N-1`, so that SQLite binds what PostgreSQL does.
    #[test]
    fn parameters_first_appear_in_order() {
        for sql in ALL {
            let mut highest = 0;
            for (i, _) in sql.match_indices('$') {
                let digits: String = sql[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let n: u32 = digits
                    .parse()
                    .unwrap_or_else(|_| panic!("a bare $ in {sql}"));
                assert!(n <= highest + 1, "${n} before ${} in {sql}", highest + 1);
                highest = highest.max(n);
            }
        }
    }
}
