//! The shared store: PostgreSQL, for any number of `lookout serve --no-workers` intakes
//! and `lookout worker` processes on any machines (docs/SCALING.md).
//!
//! The tables are the SQLite store's, plus a count of lease takeovers per delivery
//! (lookout/migrations/postgres/*.sql, applied at start and recorded in
//! `schema_migrations`). What differs is how processes share them:
//!
//! - **Claims** take due rows with `FOR UPDATE SKIP LOCKED`, so workers that claim at
//!   the same moment get different deliveries instead of waiting for each other, and
//!   lease them (`lease_owner`, `lease_until`) in the same statement.
//! - **Leases end by themselves.** Nothing hands back another process's leases: a worker
//!   that dies leaves its deliveries leased until `lease_until`, and then any worker
//!   takes them over (counted in `lease_expiries`, since the dead worker may have sent a
//!   request before dying). [`Store::release_all`] exists for the suite; `serve` and
//!   `worker` never call it on PostgreSQL.
//! - Times come from the processes (the trait passes `now`), so the machines' clocks
//!   must agree to well within a lease (NTP does).
//!
//! Connections come from a small pool per process, over plain TCP unless the URL asks
//! for TLS (`sslmode=require` or `verify-full`, see [`tls`]). A password is read from the URL or, better, from
//! `$PGPASSWORD`, which no other user of the machine can read in a process list.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures::{Stream, StreamExt as _, stream};
use tokio::sync::Notify;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::columns::from_columns;
use super::deliveries::{DeliveryState, minute_of};
use super::sql::{self, DELIVERY_COLUMNS, LANES_AT};
use super::upkeep::{DisableRule, Fared};
use super::{
    Activity, ActivityWindow, Admission, AttemptOutcome, AttemptRecord, Claimed, DeliveryFilter,
    DeliveryRow, Disabled, DisabledTarget, EventFilter, Finish, Generation, IdempotencyKey, Lease,
    Millis, NewDelivery, NewEvent, Product, Result, Stats, Status, Store, StoreError, StoredEvent,
    StoredInstance, from_json, no_event, now_ms, status_of, to_json,
};
use super::{ConsoleSession, LINK_COLUMNS, LINK_STILL_THERE, PortalLink, SESSION_COLUMNS};
use crate::lanes::{
    AT_ONCE, Claim, Due, DueLane, Lane, Pace, PaceState, SLOW_MS, Waiting, lanes_per_claim, news,
};
use crate::shaping::Arrival;
use crate::tokens::{NewToken, Token};

#[path = "postgres_shaping.rs"]
mod shaping;
#[path = "postgres_tls.rs"]
pub mod tls;
#[path = "postgres_upkeep.rs"]
mod upkeep;

#[path = "postgres_fallback.rs"]
mod fallback;

/// The schema, in order: (version, name, SQL). Append only: a shipped step never changes.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "tokens",
        include_str!("../../migrations/postgres/0002_tokens.sql"),
    ),
    (
        3,
        "console",
        include_str!("../../migrations/postgres/0003_console.sql"),
    ),
    (
        4,
        "upkeep",
        include_str!("../../migrations/postgres/0004_upkeep.sql"),
    ),
    (
        5,
        "idempotency",
        include_str!("../../migrations/postgres/0005_idempotency.sql"),
    ),
    (
        6,
        "config_generation",
        include_str!("../../migrations/postgres/0006_config_generation.sql"),
    ),
    (
        7,
        "lanes",
        include_str!("../../migrations/postgres/0007_lanes.sql"),
    ),
    (
        8,
        "trace_context",
        include_str!("../../migrations/postgres/0008_trace_context.sql"),
    ),
    (
        9,
        "console_sessions",
        include_str!("../../migrations/postgres/0009_console_sessions.sql"),
    ),
    (
        10,
        "fallback",
        include_str!("../../migrations/postgres/0010_fallback.sql"),
    ),
    (
        11,
        "shaping_windows",
        include_str!("../../migrations/postgres/0011_shaping_windows.sql"),
    ),
    (
        12,
        "attempt_minutes",
        include_str!("../../migrations/postgres/0012_attempt_minutes.sql"),
    ),
];

/// Connections per process: the workers' claims and finishes plus the intake's accepts.
/// A worker with the default concurrency (32) keeps about half of them busy.
const POOL_SIZE: usize = 16;

pub struct PostgresStore {
    pool: Pool,
    /// For the connection that listens for new work ([`Store::listen_for_work`]).
    listener: Connect,
}

/// How to make a connection outside the pool: the pool's settings and its TLS.
#[derive(Clone)]
struct Connect {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

/// The channel accepts and redeliveries notify, and idle workers listen on.
const DUE_CHANNEL: &str = "lookout_due";

/// The error and its causes on one line (tokio-postgres puts the server's message in
/// the source, not in the top error). URLs and passwords are never part of these.
fn backend(err: &(dyn std::error::Error + 'static)) -> StoreError {
    StoreError::Backend(describe(err))
}

fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        backend(&err)
    }
}

/// Attempt outcomes are kept as their names.
fn outcome_at(row: &Row, index: usize) -> Result<AttemptOutcome> {
    let name: &str = row.try_get(index)?;
    name.parse().map_err(StoreError::Corrupt)
}

impl From<PoolError> for StoreError {
    fn from(err: PoolError) -> Self {
        match err {
            // Connecting failed: say so without the pool's own wording.
            PoolError::Backend(err) => {
                StoreError::Backend(format!("PostgreSQL: {}", describe(&err)))
            }
            other => backend(&other),
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/database?options=…`) and brings the
    /// schema up to date. Tables go in the first schema of the connection's
    /// `search_path` (`public` unless `options=-c search_path=NAME` says otherwise).
    pub async fn open(url: &str) -> Result<PostgresStore> {
        let (url, ssl) = tls::split(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Backend(format!("invalid PostgreSQL URL: {}", describe(&e)))
        })?;
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_application_name().is_none() {
            config.application_name("lookout");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let tls = tls::connector(&ssl)?;
        let manager = match &tls {
            Some(connector) => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Manager::from_config(config.clone(), connector.clone(), recycling)
            }
            None => Manager::from_config(config.clone(), NoTls, recycling),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let listener = Connect { config, tls };
        let store = PostgresStore { pool, listener };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object> {
        Ok(self.pool.get().await?)
    }

    /// `sql` on a pool connection of its own (for queries run side by side).
    async fn query_alone(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        query(&self.client().await?, sql, params).await
    }

    /// Applies the migrations this database has not had, in one transaction, under an
    /// advisory lock: several processes starting at once apply each step once.
    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(hashtext('lookout migrations ' || coalesce(current_schema(), '')));
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );",
        )
        .await?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
        if let Some(newer) = applied.iter().find(|v| **v > known) {
            return Err(StoreError::Backend(format!(
                "the database is from a newer lookout (schema {newer}, this one knows {known})"
            )));
        }
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

fn session_row(row: &Row) -> Result<ConsoleSession> {
    Ok(from_columns!(row.try_get => ConsoleSession { id, product, link, created_at, expires_at }))
}

fn link_row(row: &Row) -> Result<PortalLink> {
    Ok(from_columns!(row.try_get => PortalLink { id, product, created_at, expires_at }))
}

const TOKEN_COLUMNS: &str = "id, scope, products, created_at, expires_at";

fn token_row(row: &Row) -> Result<Token> {
    let scope: String = row.try_get(1)?;
    let products: String = row.try_get(2)?;
    Ok(Token {
        id: row.try_get(0)?,
        scope: scope.parse().map_err(StoreError::Corrupt)?,
        products: from_json(&products)?,
        created_at: row.try_get(3)?,
        expires_at: row.try_get(4)?,
    })
}

/// Counts are INTEGER columns; they never go negative.
fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// A row selected with [`DELIVERY_COLUMNS`].
fn delivery_row(row: &Row) -> Result<DeliveryRow> {
    Ok(from_columns!(row.try_get => DeliveryRow {
        id, event_id, product, instance, service, next_at, created_at, updated_at,
        last_error, ordered, replaced_by,
    } + {
        attempts: count(row.try_get(11)?),
        digest_events: row.try_get::<_, Option<i32>>(12)?.map(count),
        status: status_of(row.try_get(13)?)?,
        fell_back_to: super::fallback::link(row.try_get(14)?, row.try_get(15)?),
        fallback_for: super::fallback::link(row.try_get(16)?, row.try_get(17)?),
    }))
}

async fn ensure_product(client: &impl GenericClient, id: &str) -> Result<()> {
    execute(
        client,
        "INSERT INTO products (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        &[&id, &now_ms()],
    )
    .await?;
    Ok(())
}

/// Removes every instance of a product, with the targets they had disabled.
async fn remove_instances(client: &impl GenericClient, product: &str) -> Result<()> {
    execute(client, sql::REMOVE_INSTANCES, &[&product]).await?;
    execute(client, sql::REMOVE_DISABLED, &[&product]).await?;
    Ok(())
}

async fn insert_instance(
    client: &impl GenericClient,
    product: &str,
    instance: &StoredInstance,
) -> Result<()> {
    execute(
        client,
        sql::PUT_INSTANCE,
        &[
            &product,
            &instance.name,
            &instance.service,
            &to_json(&instance.options),
        ],
    )
    .await?;
    // New options may well point somewhere else: give every target a fresh start.
    execute(client, sql::FORGET_DISABLED, &[&product, &instance.name]).await?;
    Ok(())
}

async fn load_product(client: &impl GenericClient, id: &str) -> Result<Option<Product>> {
    let sql = sql::PRODUCT_SETTINGS;
    let found = query(client, sql, &[&id]).await?;
    let Some(row) = found.first() else {
        return Ok(None);
    };
    let settings = (row.try_get(0)?, row.try_get(1)?);
    let mut services = Vec::new();
    for row in query(client, sql::PRODUCT_INSTANCES, &[&id]).await? {
        services.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
    }
    let mut disabled = Vec::new();
    for row in query(client, sql::PRODUCT_DISABLED, &[&id]).await? {
        disabled.push(from_columns!(row.try_get => DisabledTarget {
            instance, key, target, reason, at,
        }));
    }
    Product::from_stored(id, settings, services, disabled).map(Some)
}

/// Gives `product` the next [`Generation`]: every change to its services or alerts
/// does (the row's lock waits for intakes accepting its events).
async fn bump_generation(client: &impl GenericClient, product: &str) -> Result<()> {
    execute(
        client,
        "UPDATE products SET generation = nextval('products_generation') WHERE id = $1",
        &[&product],
    )
    .await?;
    Ok(())
}

/// The generation of each of `products` now, held shared until the transaction ends:
/// no change to them commits meanwhile (it would wait).
async fn generations(
    tx: &impl GenericClient,
    products: &[&str],
) -> Result<HashMap<String, Generation>> {
    let rows = query(
        tx,
        "SELECT id, generation FROM products WHERE id = ANY($1) ORDER BY id FOR SHARE",
        &[&products],
    )
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Leases one lane's due deliveries (at most `$3`, earliest due first, those no other
/// transaction holds) and returns what an attempt needs (each row's event and product
/// looked up by key: a join let the planner scan every event when its statistics were
/// young). A delivery whose previous
/// lease ran out without being finished or released is a takeover: counted in
/// `lease_expiries`.
const CLAIM_IN_LANE: &str = "
WITH due AS (
    SELECT id, lease_owner IS NOT NULL AS expired FROM deliveries
    WHERE lane = $1 AND status IN ('pending', 'failed') AND next_at <= $2
      AND (lease_until IS NULL OR lease_until <= $2)
    ORDER BY next_at, seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries d
    SET lease_owner = $4, lease_until = $5,
        lease_expiries = d.lease_expiries + (CASE WHEN d.lease_owner IS NULL THEN 0 ELSE 1 END)
    FROM due WHERE d.id = due.id
    RETURNING d.*, due.expired
)
SELECT c.id, c.event_id, c.product_id, c.instance, c.service,
       (SELECT e.payload FROM events e WHERE e.id = c.event_id),
       (SELECT p.generation FROM products p WHERE p.id = c.product_id),
       ARRAY(SELECT t.target_key FROM disabled_targets t
             WHERE t.product_id = c.product_id AND t.instance = c.instance
             ORDER BY t.target_key) AS disabled,
       (SELECT e.trace_context FROM events e WHERE e.id = c.event_id), c.fallback_for,
       c.attempts, c.step, c.done_targets, c.lane, c.throttles,
       c.digest_events IS NOT NULL, c.expired
FROM claimed c
ORDER BY c.next_at, c.seq";

/// A lane selected with [`LANES_AT`](sql::LANES_AT).
fn lane_row(row: &Row) -> Result<DueLane> {
    Ok(from_columns!(row.try_get => DueLane {
        key, destination, tat, latency_ms, due_at,
    } + {
        cap: count(row.try_get(5)?),
        in_flight: u32::try_from(row.try_get::<_, i64>(6)?).unwrap_or(u32::MAX),
        pace: Pace {
            every_ms: row.try_get(7)?,
            burst: count(row.try_get(8)?),
        },
    }))
}

/// Each lane after a claim: when it is due again (`at`, or from its leases and its next
/// due delivery, see [`Due`]) and whether it was served; and the new schedule of each
/// paced destination it took slots from.
const SETTLE_LANES: &str = "
WITH moved AS (
    UPDATE paces p SET tat = n.tat
    FROM UNNEST($6::text[], $7::bigint[]) AS n (destination, tat)
    WHERE p.destination = n.destination
)
UPDATE lanes l SET
    due_at = CASE WHEN s.kind = 'at' THEN s.at ELSE (
        SELECT CASE WHEN s.kind = 'next' THEN LEAST(w.lease, w.next)
            -- At its cap: due when a lease ends, or as any lane when none is left.
            ELSE COALESCE(w.lease, w.next) END
        FROM (SELECT
            (SELECT MIN(d.lease_until) FROM deliveries d
             WHERE d.lane = l.key AND d.lease_owner IS NOT NULL) AS lease,
            (SELECT d.next_at FROM deliveries d
             WHERE d.lane = l.key AND d.status IN ('pending', 'failed')
               AND d.next_at IS NOT NULL AND (d.lease_until IS NULL OR d.lease_until <= $5)
             ORDER BY d.next_at LIMIT 1) AS next) w) END,
    served_at = CASE WHEN s.served THEN $5 ELSE l.served_at END
FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bool[]) AS s (key, kind, at, served)
WHERE l.key = s.key";

/// Makes lanes due by `$2` (deliveries in them may be claimable then). Each row is
/// written, never filtered out by a `WHERE` on its time: a claim holding it may be about
/// to set a later time from a view without these deliveries, and only a write waits for
/// that claim and then decides on what it committed (READ COMMITTED skips a row whose
/// committed version fails the `WHERE`, without waiting). Locked in key order first, as
/// intakes and outcomes lock them.
const LANES_DUE_BY: &str = "
WITH locked AS (
    SELECT key FROM lanes WHERE key = ANY($1) ORDER BY key FOR NO KEY UPDATE
)
UPDATE lanes l SET due_at = CASE WHEN l.due_at IS NULL OR l.due_at > $2 THEN $2 ELSE l.due_at END
FROM locked WHERE l.key = locked.key";

/// One statement that stores new deliveries (`$1`–`$9`, their columns as arrays), the
/// events they belong to when `with_events` (`$17`–`$21`), and creates or updates their
/// lanes (`$10`–`$16`, sorted by key), each due by its time, with their destinations'
/// schedules. Deliveries already stored are passed over when `or_ignore`. Its count is
/// the deliveries added.
fn queue_sql(with_events: bool, or_ignore: bool) -> String {
    let events = if with_events {
        "event AS (
            INSERT INTO events (id, product_id, payload, received_at, trace_context)
            SELECT * FROM UNNEST($17::text[], $18::text[], $19::text[], $20::bigint[],
                                 $21::text[])
        ),"
    } else {
        ""
    };
    let conflict = if or_ignore {
        "ON CONFLICT (id) DO NOTHING"
    } else {
        ""
    };
    format!(
        "WITH {events} paced AS (
            INSERT INTO paces (destination)
            SELECT DISTINCT destination FROM UNNEST($12::text[]) AS p (destination)
            ON CONFLICT (destination) DO NOTHING
        ), lane AS (
            INSERT INTO lanes (key, product_id, destination, every_ms, burst, cap, due_at)
            SELECT * FROM UNNEST($10::text[], $11::text[], $12::text[], $13::bigint[],
                $14::int[], $15::int[], $16::bigint[])
            ORDER BY 1
            ON CONFLICT (key) DO UPDATE SET destination = excluded.destination,
                every_ms = excluded.every_ms, burst = excluded.burst, cap = excluded.cap,
                due_at = LEAST(lanes.due_at, excluded.due_at)
        )
        INSERT INTO deliveries (id, event_id, product_id, instance, service, status, next_at,
            created_at, updated_at, lane, order_key)
        SELECT d.id, d.event_id, d.product_id, d.instance, d.service, 'pending', d.next_at,
            d.at, d.at, d.lane, d.order_key
        FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
            $7::bigint[], $8::text[], $9::text[])
            AS d (id, event_id, product_id, instance, service, next_at, at, lane, order_key)
        {conflict}"
    )
}

/// Takes the transaction-long locks of these order keys, in order: an intake deciding
/// whether a new delivery is held and a finish releasing the next one never interleave.
pub(crate) async fn lock_keys(tx: &impl GenericClient, keys: &mut Vec<&str>) -> Result<()> {
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    query(
        tx,
        "SELECT pg_advisory_xact_lock(hashtextextended('lookout order ' || k, 0))
         FROM UNNEST($1::text[]) AS k ORDER BY k",
        &[&*keys],
    )
    .await?;
    Ok(())
}

/// Of these order keys, those a queued delivery (other than `except`) has.
async fn busy_keys(
    tx: &impl GenericClient,
    keys: &[&str],
    except: &[&str],
) -> Result<HashSet<String>> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = query(
        tx,
        "SELECT DISTINCT order_key FROM deliveries WHERE order_key = ANY($1)
             AND status IN ('pending', 'failed') AND id <> ALL($2)",
        &[&keys, &except],
    )
    .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

/// The delivery of each of `keys` held longest is due now, unless one of its key is
/// already due or leased (the keys must be locked, see [`lock_keys`]); their lanes are
/// made due.
pub(crate) async fn release_keys(
    tx: &impl GenericClient,
    keys: &[&str],
    now: Millis,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let rows = query(
        tx,
        "UPDATE deliveries d SET next_at = $2
         FROM (SELECT DISTINCT ON (order_key) id FROM deliveries
               WHERE order_key = ANY($1) AND next_at IS NULL AND status IN ('pending', 'failed')
                 AND NOT EXISTS (SELECT 1 FROM deliveries q WHERE q.order_key = deliveries.order_key
                     AND q.next_at IS NOT NULL AND q.status IN ('pending', 'failed'))
               ORDER BY order_key, seq) AS first
         WHERE d.id = first.id
         RETURNING d.lane",
        &[&keys, &now],
    )
    .await?;
    let lanes: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<_, Option<String>>(0))
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    lanes_due_by(tx, &lanes, AT_ONCE).await
}

async fn lanes_due_by(tx: &impl GenericClient, lanes: &[String], at: Millis) -> Result<()> {
    if !lanes.is_empty() {
        execute(tx, LANES_DUE_BY, &[&lanes, &at]).await?;
    }
    Ok(())
}

/// A new delivery to store: its event's id, its product, it, and when it is due.
type NewRow<'a> = (&'a str, &'a str, &'a NewDelivery, Millis);

/// One column of `rows`.
fn column<'a>(rows: &[NewRow<'a>], f: impl Fn(&NewRow<'a>) -> &'a str) -> Vec<&'a str> {
    rows.iter().map(f).collect()
}

/// Stores new deliveries (and `events`, the events they belong to, when any), each due
/// then or held behind a queued delivery of its order key, and queues them in their
/// lanes, in one statement. `ON CONFLICT DO NOTHING` when `or_ignore`. How many
/// deliveries were added.
async fn insert_deliveries(
    tx: &impl GenericClient,
    events: &[&NewEvent],
    deliveries: &[NewRow<'_>],
    or_ignore: bool,
) -> Result<u64> {
    if deliveries.is_empty() && events.is_empty() {
        return Ok(0);
    }
    let mut keys: Vec<&str> = deliveries
        .iter()
        .filter_map(|(_, _, d, _)| d.order_key.as_deref())
        .collect();
    lock_keys(tx, &mut keys).await?;
    let ids: Vec<&str> = deliveries
        .iter()
        .map(|(_, _, d, _)| d.id.as_str())
        .collect();
    let mut busy = busy_keys(tx, &keys, &ids).await?;
    let next_at: Vec<Option<Millis>> = deliveries
        .iter()
        .map(|(_, _, delivery, due)| match &delivery.order_key {
            // The first of its key in this batch goes when no earlier one is queued.
            Some(key) if !busy.insert(key.clone()) => None,
            _ => Some(*due),
        })
        .collect();
    let due: Vec<Millis> = deliveries.iter().map(|d| d.3).collect();
    let order_keys: Vec<Option<&str>> = deliveries
        .iter()
        .map(|(_, _, d, _)| d.order_key.as_deref())
        .collect();
    // Each lane once, due by its earliest delivery; in key order (so that intakes lock
    // them in one order).
    let mut lanes: Vec<(&Lane, &str, Millis)> = Vec::new();
    for (_, product, delivery, due) in deliveries {
        match lanes
            .iter_mut()
            .find(|(lane, ..)| lane.key == delivery.lane.key)
        {
            Some((_, _, earliest)) => *earliest = (*earliest).min(*due),
            None => lanes.push((&delivery.lane, product, *due)),
        }
    }
    lanes.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let event_ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let event_products: Vec<&str> = events.iter().map(|e| e.product.as_str()).collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    let received: Vec<Millis> = events.iter().map(|e| e.received_at).collect();
    let trace_contexts: Vec<Option<&str>> =
        events.iter().map(|e| e.trace_context.as_deref()).collect();
    let columns = (
        column(deliveries, |d| d.0),
        column(deliveries, |d| d.1),
        column(deliveries, |d| d.2.instance.as_str()),
        column(deliveries, |d| d.2.service.as_str()),
        column(deliveries, |d| d.2.lane.key.as_str()),
    );
    let lane_keys: Vec<&str> = lanes.iter().map(|(l, ..)| l.key.as_str()).collect();
    let lane_products: Vec<&str> = lanes.iter().map(|(_, p, _)| *p).collect();
    let destinations: Vec<&str> = lanes.iter().map(|(l, ..)| l.destination.as_str()).collect();
    let every: Vec<Millis> = lanes.iter().map(|(l, ..)| l.pace.every_ms).collect();
    let burst: Vec<i32> = lanes.iter().map(|(l, ..)| to_i32(l.pace.burst)).collect();
    let cap: Vec<i32> = lanes.iter().map(|(l, ..)| to_i32(l.cap)).collect();
    let lane_due: Vec<Millis> = lanes.iter().map(|(.., due)| *due).collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &ids,
        &columns.0,
        &columns.1,
        &columns.2,
        &columns.3,
        &next_at,
        &due,
        &columns.4,
        &order_keys,
        &lane_keys,
        &lane_products,
        &destinations,
        &every,
        &burst,
        &cap,
        &lane_due,
    ];
    if !events.is_empty() {
        params.extend([
            &event_ids as &(dyn ToSql + Sync),
            &event_products,
            &payloads,
            &received,
            &trace_contexts,
        ]);
    }
    let sql = queue_sql(!events.is_empty(), or_ignore);
    execute(tx, &sql, &params).await
}

/// Records an event's idempotency key unless a live one is recorded; a row back means
/// it was recorded. A concurrent transaction recording the same key makes this wait for
/// its outcome (the primary key), so concurrent duplicates resolve to one.
const CLAIM_KEY: &str = sql::CLAIM_IDEMPOTENCY_KEY;

/// A batch of finished attempts in one statement (each attempt's columns as arrays, the
/// attempts' and disabled targets' rows naming their delivery): the requests are
/// recorded whoever holds the lease (they happened), targets that answered 410 are
/// disabled, and a delivery's state changes only if `$1` still holds its lease. Returns,
/// for each known delivery, its lane, its order key, whether its state changed, its
/// product and instance; unknown ids are passed over.
const FINISH: &str = "
WITH known AS (
    SELECT id, product_id, instance, lane, order_key FROM deliveries WHERE id = ANY($3)
), recorded AS (
    INSERT INTO attempts (delivery_id, number, at, duration_ms, target, outcome, status, error,
        product_id, minute)
    SELECT a.*, k.product_id, a.at - a.at % 60000
    FROM UNNEST($11::text[], $12::int[], $13::bigint[], $14::bigint[], $15::text[],
        $16::text[], $17::int[], $18::text[])
        AS a (delivery_id, number, at, duration_ms, target, outcome, status, error)
    JOIN known k ON k.id = a.delivery_id
), disabled AS (
    INSERT INTO disabled_targets (product_id, instance, target_key, target, reason, at)
    SELECT DISTINCT ON (k.product_id, k.instance, t.key)
        k.product_id, k.instance, t.key, t.shown, t.reason, t.at
    FROM UNNEST($19::text[], $20::text[], $21::text[], $22::text[], $23::bigint[])
        AS t (delivery_id, key, shown, reason, at)
    JOIN known k ON k.id = t.delivery_id
    ORDER BY k.product_id, k.instance, t.key, t.at DESC
    ON CONFLICT (product_id, instance, target_key) DO UPDATE
    SET target = excluded.target, reason = excluded.reason, at = excluded.at
), updated AS (
    UPDATE deliveries d SET status = f.status, next_at = f.next_at, step = f.step,
        done_targets = f.done, last_error = f.last_error, attempts = d.attempts + f.attempted,
        updated_at = $2, throttles = d.throttles + f.throttled,
        lease_owner = NULL, lease_until = NULL
    FROM UNNEST($3::text[], $4::text[], $5::bigint[], $6::int[], $7::text[], $8::text[],
        $9::int[], $10::int[])
        AS f (id, status, next_at, step, done, last_error, attempted, throttled)
    WHERE d.id = f.id AND d.lease_owner = $1
    RETURNING d.id
)
SELECT k.id, k.lane, k.order_key, k.id IN (SELECT id FROM updated), k.product_id, k.instance
FROM known k";

fn ids_of(rows: &[tokio_postgres::Row]) -> Result<Vec<String>> {
    Ok(rows
        .iter()
        .map(|row| row.try_get(0))
        .collect::<std::result::Result<_, _>>()?)
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The column of [`CLAIM_IN_LANE`] that says whether a lease was taken over.
const CLAIM_EXPIRED: usize = 16;

/// A delivery claimed with [`CLAIM_IN_LANE`].
fn claimed_row(row: &Row) -> Result<Claimed> {
    Ok(from_columns!(row.try_get => Claimed {
        id, event_id, product, instance, service, payload, generation, disabled_targets,
        trace_context, fallback_for,
    } + {
        attempts: count(row.try_get(10)?),
        step: count(row.try_get(11)?),
        done_targets: from_json(row.try_get(12)?)?,
        lane: row.try_get::<_, Option<String>>(13)?.unwrap_or_default(),
        throttles: count(row.try_get(14)?),
        digest: row.try_get::<_, bool>(15)?.then(Vec::new),
    }))
}

/// What a finished attempt's row said: its lane, its order key, whether it changed,
/// its product and instance.
type Finished = (Option<String>, Option<String>, bool, String, String);

/// A batch of finished attempts (see [`Store::finish_batch`]) in one statement: what
/// each known delivery's row said, by id.
async fn finish_all(
    tx: &impl GenericClient,
    finished: &[(String, Finish)],
    owner: &str,
    now: Millis,
) -> Result<HashMap<String, Finished>> {
    let ids: Vec<&str> = finished.iter().map(|(id, _)| id.as_str()).collect();
    let each = |f: fn(&Finish) -> i32| -> Vec<i32> { finished.iter().map(|(_, x)| f(x)).collect() };
    let statuses: Vec<&str> = finished.iter().map(|(_, f)| f.status.as_str()).collect();
    let next_ats: Vec<Option<Millis>> = finished.iter().map(|(_, f)| f.next_at).collect();
    let done: Vec<String> = finished
        .iter()
        .map(|(_, f)| to_json(&f.done_targets))
        .collect();
    let errors: Vec<Option<&str>> = finished
        .iter()
        .map(|(_, f)| f.last_error.as_deref())
        .collect();
    let attempts: Vec<(&str, &AttemptRecord)> = finished
        .iter()
        .flat_map(|(id, f)| f.attempts.iter().map(move |a| (id.as_str(), a)))
        .collect();
    let disable: Vec<(&str, &DisabledTarget)> = finished
        .iter()
        .flat_map(|(id, f)| f.disable.iter().map(move |d| (id.as_str(), d)))
        .collect();
    let rows = query(
        tx,
        FINISH,
        &[
            &owner,
            &now,
            &ids,
            &statuses,
            &next_ats,
            &each(|f| to_i32(f.step)),
            &done,
            &errors,
            &each(|f| i32::from(!f.attempts.is_empty())),
            &each(|f| i32::from(f.throttled)),
            &attempts.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            &attempts
                .iter()
                .map(|(_, a)| to_i32(a.number))
                .collect::<Vec<_>>(),
            &attempts.iter().map(|(_, a)| a.at).collect::<Vec<_>>(),
            &attempts
                .iter()
                .map(|(_, a)| i64::try_from(a.duration_ms).unwrap_or(i64::MAX))
                .collect::<Vec<_>>(),
            &attempts
                .iter()
                .map(|(_, a)| a.target.as_deref())
                .collect::<Vec<_>>(),
            &attempts
                .iter()
                .map(|(_, a)| a.outcome.as_str())
                .collect::<Vec<_>>(),
            &attempts
                .iter()
                .map(|(_, a)| a.status.map(i32::from))
                .collect::<Vec<_>>(),
            &attempts
                .iter()
                .map(|(_, a)| a.error.as_deref())
                .collect::<Vec<_>>(),
            &disable.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            &disable
                .iter()
                .map(|(_, d)| d.key.as_str())
                .collect::<Vec<_>>(),
            &disable
                .iter()
                .map(|(_, d)| d.target.as_str())
                .collect::<Vec<_>>(),
            &disable
                .iter()
                .map(|(_, d)| d.reason.as_str())
                .collect::<Vec<_>>(),
            &disable.iter().map(|(_, d)| d.at).collect::<Vec<_>>(),
        ],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let found = (
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
            );
            Ok((row.try_get(0)?, found))
        })
        .collect()
}

/// After a batch of attempts: the order keys whose delivery is finished let the next
/// go, and each lane's [`news`](crate::lanes::news) counts (its answer time, a free
/// slot, a wait its destination asked for).
/// Locks what a finish that stores fallbacks writes, its deliveries' order keys and
/// lanes and its fallbacks', all at once in the order intakes lock theirs (order keys,
/// then lanes, each sorted). Taken in two rounds (its own, then the fallbacks'), they
/// would wait on an intake holding a fallback's lane while it waits for one of ours
/// (intakes_and_outcomes_with_fallbacks_share_lanes_without_deadlock). The locks taken
/// again later in the transaction are already held. A fallback's lane that no row holds
/// yet cannot be locked ahead: the first fallback ever sent to a new lane may still meet
/// an intake creating it, and PostgreSQL then breaks the tie (the intake answers 503 and
/// is sent again).
async fn lock_as_intakes_do(
    tx: &impl GenericClient,
    finished: &[(Finished, &Finish)],
    fallbacks: &[(&str, &NewDelivery)],
) -> Result<()> {
    let own_keys = keys_released(finished);
    let fallback_keys = fallbacks.iter().filter_map(|(_, f)| f.order_key.as_deref());
    lock_keys(tx, &mut own_keys.chain(fallback_keys).collect()).await?;
    let mut lanes: Vec<&str> = finished
        .iter()
        .filter_map(|((lane, ..), _)| lane.as_deref())
        .chain(fallbacks.iter().map(|(_, f)| f.lane.key.as_str()))
        .collect();
    lanes.sort_unstable();
    lanes.dedup();
    query(
        tx,
        "SELECT key FROM lanes WHERE key = ANY($1) ORDER BY key FOR NO KEY UPDATE",
        &[&lanes],
    )
    .await?;
    Ok(())
}

/// The order keys of the finished deliveries that left the queue (their state changed
/// and they are not queued again): the keys a finish releases.
fn keys_released<'a>(finished: &'a [(Finished, &Finish)]) -> impl Iterator<Item = &'a str> {
    finished
        .iter()
        .filter(|((_, _, changed, ..), finish)| *changed && !finish.status.is_queued())
        .filter_map(|((_, key, ..), _)| key.as_deref())
}

async fn settle_finished(
    tx: &impl GenericClient,
    finished: &[(Finished, &Finish)],
    now: Millis,
) -> Result<()> {
    let mut keys: Vec<&str> = keys_released(finished).collect();
    lock_keys(tx, &mut keys).await?;
    release_keys(tx, &keys, now).await?;
    let mut news = news(
        finished
            .iter()
            .filter_map(|((lane, ..), finish)| Some(finish.heard(lane.as_deref()?))),
    );
    if news.is_empty() {
        return Ok(());
    }
    news.sort_by(|a, b| a.lane.cmp(&b.lane));
    let lanes: Vec<&str> = news.iter().map(|n| n.lane.as_str()).collect();
    let latencies: Vec<Option<Millis>> = news.iter().map(|n| n.latency_ms).collect();
    // Every lane is written, even one that looks due already: see LANES_DUE_BY. They are
    // locked in key order first, as intakes lock them: an UPDATE alone takes its rows in
    // whatever order its plan reads them, and waits on an intake that waits on it
    // (intakes_and_outcomes_share_lanes_without_deadlock).
    execute(
        tx,
        "WITH locked AS (
             SELECT key FROM lanes WHERE key = ANY($1) ORDER BY key FOR NO KEY UPDATE
         )
         UPDATE lanes l SET
             latency_ms = CASE WHEN n.latency IS NULL
                     OR (n.latency <= $4 AND l.latency_ms <= $4) THEN l.latency_ms
                 WHEN l.latency_ms = 0 THEN n.latency
                 ELSE (l.latency_ms * 4 + n.latency) / 5 END,
             due_at = $3
         FROM locked JOIN UNNEST($1::text[], $2::bigint[]) AS n (key, latency)
             ON n.key = locked.key
         WHERE l.key = locked.key",
        &[&lanes, &latencies, &AT_ONCE, &SLOW_MS],
    )
    .await?;
    let held: Vec<&str> = news
        .iter()
        .filter(|n| n.hold_until.is_some())
        .map(|n| n.lane.as_str())
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    let rows = query(
        tx,
        "SELECT key, destination, every_ms, burst FROM lanes WHERE key = ANY($1)",
        &[&held],
    )
    .await?;
    let mut holds: Vec<(String, Pace, Millis)> = Vec::new();
    for row in &rows {
        let lane: String = row.try_get(0)?;
        let Some(until) = news
            .iter()
            .find(|n| n.lane == lane)
            .and_then(|n| n.hold_until)
        else {
            continue;
        };
        let pace = Pace {
            every_ms: row.try_get(2)?,
            burst: count(row.try_get(3)?),
        };
        holds.push((row.try_get(1)?, pace, until));
    }
    hold_destinations(tx, holds).await
}

/// Moves each destination's schedule so that it has no slot before its time.
async fn hold_destinations(
    tx: &impl GenericClient,
    mut holds: Vec<(String, Pace, Millis)>,
) -> Result<()> {
    holds.sort_by(|a, b| a.0.cmp(&b.0));
    for (destination, pace, until) in holds {
        let rows = query(
            tx,
            "SELECT tat FROM paces WHERE destination = $1 FOR UPDATE",
            &[&destination],
        )
        .await?;
        let tat = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
        let mut state = PaceState { pace, tat };
        state.hold(until);
        execute(tx, sql::PUT_PACE, &[&destination, &state.tat]).await?;
    }
    Ok(())
}

/// A target that answered is healthy again: its failures in a row start over (one
/// statement for the batch).
async fn clear_health(tx: &impl GenericClient, finished: &[(String, Finish)]) -> Result<()> {
    let answered: Vec<(&str, &str)> = finished
        .iter()
        .flat_map(|(id, finish)| {
            let healthy = finish.health.iter().filter(|r| r.failure.is_none());
            healthy.map(move |result| (id.as_str(), result.key.as_str()))
        })
        .collect();
    if answered.is_empty() {
        return Ok(());
    }
    let (deliveries, keys): (Vec<&str>, Vec<&str>) = answered.into_iter().unzip();
    execute(
        tx,
        "DELETE FROM target_health t
         USING deliveries d, unnest($1::text[], $2::text[]) AS a(delivery, key)
         WHERE d.id = a.delivery AND t.product_id = d.product_id
           AND t.instance = d.instance AND t.target_key = a.key",
        &[&deliveries, &keys],
    )
    .await?;
    Ok(())
}

async fn claim_key(
    tx: &impl GenericClient,
    event: &NewEvent,
    key: &IdempotencyKey,
) -> Result<Option<Admission>> {
    let claimed = query(
        tx,
        CLAIM_KEY,
        &[
            &event.product,
            &key.key,
            &key.digest,
            &event.id,
            &event.answer(),
            &event.received_at,
            &key.since,
        ],
    )
    .await?;
    if !claimed.is_empty() {
        return Ok(None);
    }
    let rows = query(tx, sql::SAVED_ANSWER, &[&event.product, &key.key]).await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Backend(format!("idempotency key `{}` vanished", key.key)))?;
    let digest: String = row.try_get(0)?;
    Ok(Some(Admission::of_earlier(key, &digest, row.try_get(1)?)))
}

/// Tells the listening workers that deliveries are due (at the commit).
async fn notify_due(client: &impl GenericClient) -> Result<()> {
    execute(client, "SELECT pg_notify($1, '')", &[&DUE_CHANNEL]).await?;
    Ok(())
}

/// What a listening connection says: notifications, notices, and its end.
type Messages =
    Pin<Box<dyn Stream<Item = std::result::Result<AsyncMessage, tokio_postgres::Error>> + Send>>;

/// A connection of its own (not the pool's) that `LISTEN`s on [`DUE_CHANNEL`]; returns
/// once the server has said yes.
async fn subscribe(connect: &Connect) -> Result<(Client, Messages)> {
    let (client, mut messages) = match &connect.tls {
        Some(tls) => {
            let (client, connection) = connect.config.connect(tls.clone()).await?;
            (client, messages_of(connection))
        }
        None => {
            let (client, connection) = connect.config.connect(NoTls).await?;
            (client, messages_of(connection))
        }
    };
    let statement = format!("LISTEN {DUE_CHANNEL}");
    let mut listen = Box::pin(client.batch_execute(&statement));
    // The connection only moves while its messages are read.
    loop {
        tokio::select! {
            listened = &mut listen => {
                listened?;
                break;
            }
            message = messages.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err.into()),
                None => return Err(StoreError::Backend("the listening connection closed".into())),
            },
        }
    }
    drop(listen);
    Ok((client, messages))
}

/// What the server sends on `connection` outside of answers (notifications).
fn messages_of<S, T>(mut connection: tokio_postgres::Connection<S, T>) -> Messages
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(stream::poll_fn(move |cx| connection.poll_message(cx)))
}

/// Wakes `wake` at each notification, for as long as anyone holds it. A lost
/// connection is made again (the workers poll meanwhile, and are woken once it is back,
/// for what they may have missed).
async fn relay_notifications(
    connect: Connect,
    (mut client, mut messages): (Client, Messages),
    wake: Weak<Notify>,
) {
    loop {
        while let Some(message) = messages.next().await {
            let Some(wake) = wake.upgrade() else { return };
            match message {
                Ok(AsyncMessage::Notification(_)) => wake.notify_one(),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!("listening for new deliveries: {}", describe(&err));
                    break;
                }
            }
        }
        drop(client);
        loop {
            tokio::time::sleep(RELISTEN_WAIT).await;
            let Some(wake) = wake.upgrade() else { return };
            match subscribe(&connect).await {
                Ok(again) => {
                    (client, messages) = again;
                    wake.notify_one();
                    break;
                }
                Err(err) => tracing::warn!("listening for new deliveries again: {err}"),
            }
        }
    }
}

impl PostgresStore {
    /// Hands back the leases of `owner` (every owner's, for `None`), due at once: their
    /// lanes are made due.
    async fn release_leases(&self, owner: Option<&str>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let rows = query(
            &tx,
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner IS NOT NULL AND ($1::text IS NULL OR lease_owner = $1)
             RETURNING lane",
            &[&owner],
        )
        .await?;
        let mut lanes: Vec<String> = rows
            .iter()
            .filter_map(|row| row.try_get::<_, Option<String>>(0).ok().flatten())
            .collect();
        lanes.sort_unstable();
        lanes.dedup();
        lanes_due_by(&tx, &lanes, AT_ONCE).await?;
        if !lanes.is_empty() {
            notify_due(&tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The lanes due at `now` a claim of `limit` looks at, with their destinations'
/// schedules; a paced destination's is locked (destinations in order, so that claims
/// never wait on each other in a circle) and read again under the lock. An unpaced
/// one's only moves when its destination asks for a wait, which a claim never writes.
async fn due_lanes(tx: &impl GenericClient, now: Millis, limit: usize) -> Result<Vec<DueLane>> {
    // Those another claim is looking at are skipped.
    let sql = format!(
        "{LANES_AT} WHERE l.due_at <= $1 ORDER BY l.served_at, l.key LIMIT $2
         FOR UPDATE OF l SKIP LOCKED"
    );
    let rows = query(tx, &sql, &[&now, &lanes_per_claim(limit)]).await?;
    let mut lanes = rows.iter().map(lane_row).collect::<Result<Vec<_>>>()?;
    let mut destinations: Vec<&str> = lanes
        .iter()
        .filter(|l| l.pace.every_ms > 0)
        .map(|l| l.destination.as_str())
        .collect();
    destinations.sort_unstable();
    destinations.dedup();
    if destinations.is_empty() {
        return Ok(lanes);
    }
    let rows = query(
        tx,
        "SELECT destination, tat FROM paces WHERE destination = ANY($1)
         ORDER BY destination FOR UPDATE",
        &[&destinations],
    )
    .await?;
    let mut tats = HashMap::with_capacity(rows.len());
    for row in &rows {
        tats.insert(row.try_get::<_, String>(0)?, row.try_get::<_, Millis>(1)?);
    }
    for lane in &mut lanes {
        if let Some(tat) = tats.get(&lane.destination) {
            lane.tat = *tat;
        }
    }
    Ok(lanes)
}

/// A claim's turns over its lanes (see [`Claim`]), inside the transaction `claim` began;
/// what it leased and how many of those were taken over, once committed with what it did
/// to its lanes and their destinations' schedules.
async fn claim_lanes(
    client: &impl GenericClient,
    mut claim: Claim,
    owner: &str,
    now: Millis,
    until: Millis,
) -> Result<(Vec<Claimed>, usize)> {
    let mut claimed = Vec::new();
    let mut expired = 0;
    while let Some((lane, count)) = claim.ask() {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let rows = query(
            client,
            CLAIM_IN_LANE,
            &[&lane, &now, &count, &owner, &until],
        )
        .await?;
        claim.took(rows.len());
        for row in &rows {
            expired += usize::from(row.try_get::<_, bool>(CLAIM_EXPIRED).unwrap_or(false));
            let mut one = claimed_row(row)?;
            if one.digest.is_some() {
                one.digest = Some(shaping::digest_payloads(client, &one.id).await?);
            }
            claimed.push(one);
        }
    }
    let (settled, paces) = claim.settle();
    let keys: Vec<&str> = settled.iter().map(|l| l.key.as_str()).collect();
    let kinds: Vec<&str> = settled
        .iter()
        .map(|l| match l.due {
            Due::At(_) => "at",
            Due::LeaseEnd => "lease",
            Due::Next => "next",
        })
        .collect();
    let ats: Vec<Option<Millis>> = settled
        .iter()
        .map(|l| match l.due {
            Due::At(at) => Some(at),
            _ => None,
        })
        .collect();
    let served: Vec<bool> = settled.iter().map(|l| l.served).collect();
    let (destinations, tats): (Vec<String>, Vec<Millis>) = paces.into_iter().unzip();
    if keys.is_empty() && destinations.is_empty() {
        client.batch_execute("COMMIT").await?;
        return Ok((claimed, expired));
    }
    let params: [&(dyn ToSql + Sync); 7] =
        [&keys, &kinds, &ats, &served, &now, &destinations, &tats];
    // Prepared before COMMIT is sent: a statement not yet prepared on this connection
    // would otherwise reach the server after the COMMIT, and run outside the claim's
    // transaction, on a view older than the deliveries queued once its locks were gone.
    let settle = client.prepare_cached(SETTLE_LANES).await?;
    let (settled, committed) = futures::join!(
        client.execute(&settle, &params),
        client.batch_execute("COMMIT")
    );
    settled?;
    committed?;
    Ok((claimed, expired))
}

/// Makes these deliveries due again at `now` with a fresh schedule (see
/// [`Store::redeliver`]); each held instead while another delivery of its order key is
/// queued. One stored before lanes existed gets a lane of its own. How many there were.
pub(crate) async fn redeliver_in(
    tx: &impl GenericClient,
    ids: &[String],
    now: Millis,
) -> Result<u64> {
    let rows = query(
        tx,
        "SELECT id, product_id, instance, lane, order_key FROM deliveries
         WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        &[&ids],
    )
    .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let (id, product, instance): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let (lane, key): (Option<String>, Option<String>) = (row.try_get(3)?, row.try_get(4)?);
        found.push((id, product, instance, lane, key));
    }
    let mut keys: Vec<&str> = found.iter().filter_map(|f| f.4.as_deref()).collect();
    lock_keys(tx, &mut keys).await?;
    let ids: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
    let mut busy = busy_keys(tx, &keys, &ids).await?;
    let own: Vec<NewDelivery> = found
        .iter()
        .filter(|f| f.3.is_none())
        .map(|(id, product, instance, ..)| NewDelivery {
            id: id.clone(),
            instance: instance.clone(),
            service: String::new(),
            lane: Lane::own(product, instance),
            order_key: None,
            shape: None,
        })
        .collect();
    let queued: Vec<NewRow<'_>> = own
        .iter()
        .zip(found.iter().filter(|f| f.3.is_none()))
        .map(|(d, f)| ("", f.1.as_str(), d, now))
        .collect();
    if !queued.is_empty() {
        // Already stored: only their lanes are made.
        insert_deliveries(tx, &[], &queued, true).await?;
    }
    let mut lanes = Vec::with_capacity(found.len());
    for (id, product, instance, lane, key) in &found {
        let lane = lane
            .clone()
            .unwrap_or_else(|| Lane::own(product, instance).key);
        let held = key.as_ref().is_some_and(|key| !busy.insert(key.clone()));
        execute(
            tx,
            "UPDATE deliveries SET status = 'pending', next_at = $2, step = 0, lane = $3,
                 done_targets = CASE WHEN status = 'delivered' THEN '[]' ELSE done_targets END,
                 lease_owner = NULL, lease_until = NULL, updated_at = $4
             WHERE id = $1",
            &[id, &(!held).then_some(now), &lane, &now],
        )
        .await?;
        lanes.push(lane);
    }
    lanes.sort_unstable();
    lanes.dedup();
    lanes_due_by(tx, &lanes, now).await?;
    Ok(found.len() as u64)
}

/// How long to wait before making a lost listening connection again.
const RELISTEN_WAIT: Duration = Duration::from_secs(1);

#[async_trait]
impl Store for PostgresStore {
    async fn put_product(&self, id: &str, instances: &[StoredInstance]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        ensure_product(&tx, id).await?;
        remove_instances(&tx, id).await?;
        for instance in instances {
            insert_instance(&tx, id, instance).await?;
        }
        bump_generation(&tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_instance(&self, product: &str, instance: &StoredInstance) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        ensure_product(&tx, product).await?;
        insert_instance(&tx, product, instance).await?;
        bump_generation(&tx, product).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_instance(&self, product: &str, instance: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let removed = execute(
            &tx,
            "DELETE FROM instances WHERE product_id = $1 AND name = $2",
            &[&product, &instance],
        )
        .await?;
        execute(&tx, sql::FORGET_DISABLED, &[&product, &instance]).await?;
        bump_generation(&tx, product).await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn remove_product(&self, id: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        remove_instances(&tx, id).await?;
        let removed = execute(&tx, sql::REMOVE_PRODUCT, &[&id]).await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn product(&self, id: &str) -> Result<Option<Product>> {
        load_product(&self.client().await?, id).await
    }

    async fn products(&self) -> Result<Vec<Product>> {
        let client = self.client().await?;
        let mut products = Vec::new();
        for row in query(&client, "SELECT id FROM products ORDER BY id", &[]).await? {
            let id: String = row.try_get(0)?;
            products.extend(load_product(&client, &id).await?);
        }
        Ok(products)
    }

    async fn accept_batch(&self, events: &[NewEvent]) -> Result<Vec<Admission>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Shared with other intakes, exclusive of a change to these products' services
        // (it updates their rows): no event is stored routed with services that a change
        // committed before it replaced.
        let mut routed: Vec<&str> = events
            .iter()
            .filter(|e| e.routed_with.is_some())
            .map(|e| e.product.as_str())
            .collect();
        routed.sort_unstable();
        routed.dedup();
        let generations = generations(&tx, &routed).await?;
        let mut admissions = Vec::with_capacity(events.len());
        let mut fresh = Vec::with_capacity(events.len());
        for event in events {
            if let Some(routed) = event.routed_with
                && generations.get(&event.product) != Some(&routed)
            {
                admissions.push(Admission::Rerouted);
                continue;
            }
            let earlier = match &event.idempotency {
                Some(key) => claim_key(&tx, event, key).await?,
                None => None,
            };
            admissions.push(earlier.unwrap_or(Admission::Stored));
            if admissions.last() == Some(&Admission::Stored) {
                fresh.push(event);
            }
        }

        let deliveries: Vec<NewRow<'_>> = fresh
            .iter()
            .flat_map(|e| {
                e.deliveries
                    .iter()
                    .map(|d| (e.id.as_str(), e.product.as_str(), d, e.received_at))
            })
            .collect();
        insert_deliveries(&tx, &fresh, &deliveries, false).await?;
        shaping::shape_stored(&tx, &fresh).await?;
        if !deliveries.is_empty() {
            // Delivered to the listening workers at the commit, not before.
            notify_due(&tx).await?;
        }
        // Durable (synchronous_commit, the server's default) before the intake answers.
        tx.commit().await?;
        Ok(admissions)
    }

    async fn claim(&self, lease: Lease<'_>, limit: usize) -> Result<Vec<Claimed>> {
        let (owner, now, until) = (lease.owner, lease.now, lease.until());
        let client = self.client().await?;
        // One transaction, its BEGIN and COMMIT sent with the statements beside them
        // (tokio-postgres pipelines requests made at once): a claim is three round
        // trips, not five, and the claim is what a worker waits for.
        let (begun, lanes) = futures::join!(
            client.batch_execute("BEGIN"),
            due_lanes(&client, now, limit)
        );
        let claimed = match begun.map_err(StoreError::from).and(lanes) {
            Ok(lanes) => {
                let claim = Claim::new(now, limit, lanes);
                claim_lanes(&client, claim, owner, now, until).await
            }
            Err(err) => Err(err),
        };
        if claimed.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        let (claimed, expired) = claimed?;
        if expired > 0 {
            tracing::warn!(
                "took over {expired} delivery(ies) whose lease had run out (a worker died or \
                 stalled): their requests may be sent twice"
            );
        }
        Ok(claimed)
    }

    async fn finish_batch(
        &self,
        owner: &str,
        finished: &[(String, Finish)],
        now: Millis,
        rule: &DisableRule,
    ) -> Result<Vec<Disabled>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut rows = finish_all(&tx, finished, owner, now).await?;
        let mut recorded = Vec::with_capacity(finished.len());
        let mut disabled = Vec::new();
        let mut fallbacks = Vec::new();
        for (id, finish) in finished {
            let Some(row) = rows.remove(id) else {
                continue;
            };
            if finish.health.iter().any(|r| r.failure.is_some()) {
                let (product, instance) = (&row.3, &row.4);
                let fared = Fared {
                    product,
                    instance,
                    results: &finish.health,
                    now,
                };
                let failed = upkeep::record_failures(&tx, &fared, rule);
                disabled.extend(failed.await?.into_iter().map(|target| Disabled {
                    product: product.clone(),
                    delivery: id.clone(),
                    target,
                }));
            }
            let changed = row.2;
            if changed
                && super::fallback::falls_back(finish.status)
                && let Some(fallback) = &finish.fallback
            {
                fallbacks.push((id.as_str(), fallback));
            }
            recorded.push((row, finish));
        }
        clear_health(&tx, finished).await?;
        if !fallbacks.is_empty() {
            lock_as_intakes_do(&tx, &recorded, &fallbacks).await?;
        }
        settle_finished(&tx, &recorded, now).await?;
        fallback::enqueue(&tx, &fallbacks, now).await?;
        tx.commit().await?;
        Ok(disabled)
    }

    async fn listen_for_work(&self, wake: Arc<Notify>) -> Result<()> {
        let listening = subscribe(&self.listener).await?;
        tokio::spawn(relay_notifications(
            self.listener.clone(),
            listening,
            Arc::downgrade(&wake),
        ));
        Ok(())
    }

    async fn release(&self, owner: &str) -> Result<()> {
        self.release_leases(Some(owner)).await
    }

    async fn release_all(&self) -> Result<()> {
        self.release_leases(None).await
    }

    async fn put_token(&self, new: &NewToken) -> Result<()> {
        let token = &new.token;
        let products = to_json(&token.products);
        execute(
            &self.client().await?,
            sql::PUT_TOKEN,
            &[
                &token.id,
                &new.digest,
                &token.scope.as_str(),
                &products,
                &token.created_at,
                &token.expires_at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<Token>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = $1");
        let rows = query(&self.client().await?, &sql, &[&digest]).await?;
        rows.first().map(token_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<Token>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id");
        let rows = query(&self.client().await?, &sql, &[]).await?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        let sql = "DELETE FROM tokens WHERE id = $1";
        Ok(execute(&self.client().await?, sql, &[&id]).await? > 0)
    }

    async fn put_session(&self, session: &ConsoleSession, digest: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let sql = "DELETE FROM console_sessions WHERE expires_at <= $1";
        execute(&tx, sql, &[&session.created_at]).await?;
        // Only while its link (if any) is there, held against a revocation until the
        // commit: a revoked link opens nothing.
        if let Some(link) = &session.link {
            let sql = "SELECT 1 FROM portal_links WHERE id = $1 AND expires_at > $2 FOR SHARE";
            if query(&tx, sql, &[link, &session.created_at])
                .await?
                .is_empty()
            {
                return Ok(false);
            }
        }
        execute(
            &tx,
            "INSERT INTO console_sessions (id, digest, product, link_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &session.id,
                &digest,
                &session.product,
                &session.link,
                &session.created_at,
                &session.expires_at,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn session_by_digest(&self, digest: &str, now: Millis) -> Result<Option<ConsoleSession>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM console_sessions s
             WHERE digest = $1 AND expires_at > $2 AND {LINK_STILL_THERE}"
        );
        let rows = query(&self.client().await?, &sql, &[&digest, &now]).await?;
        rows.first().map(session_row).transpose()
    }

    async fn sessions(&self, now: Millis) -> Result<Vec<ConsoleSession>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM console_sessions s
             WHERE expires_at > $1 AND {LINK_STILL_THERE} ORDER BY created_at, id"
        );
        let rows = query(&self.client().await?, &sql, &[&now]).await?;
        rows.iter().map(session_row).collect()
    }

    async fn end_session(&self, id: &str) -> Result<bool> {
        let sql = "DELETE FROM console_sessions WHERE id = $1";
        Ok(execute(&self.client().await?, sql, &[&id]).await? > 0)
    }

    async fn put_link(&self, link: &PortalLink) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let sql = "DELETE FROM portal_links WHERE expires_at <= $1";
        execute(&tx, sql, &[&link.created_at]).await?;
        execute(
            &tx,
            sql::PUT_LINK,
            &[&link.id, &link.product, &link.created_at, &link.expires_at],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn link(&self, id: &str) -> Result<Option<PortalLink>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM portal_links WHERE id = $1");
        let rows = query(&self.client().await?, &sql, &[&id]).await?;
        rows.first().map(link_row).transpose()
    }

    async fn links(&self, now: Millis) -> Result<Vec<PortalLink>> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM portal_links WHERE expires_at > $1
             ORDER BY created_at, id"
        );
        let rows = query(&self.client().await?, &sql, &[&now]).await?;
        rows.iter().map(link_row).collect()
    }

    async fn revoke_link(&self, id: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The link first: it waits for a session being stored from it (FOR SHARE).
        let removed = execute(&tx, "DELETE FROM portal_links WHERE id = $1", &[&id]).await?;
        execute(
            &tx,
            "DELETE FROM console_sessions WHERE link_id = $1",
            &[&id],
        )
        .await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn events_since(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let client = self.client().await?;
        let (after_at, after_id) = filter.after.clone().unzip();
        let limit = i64::try_from(filter.limit.max(1)).unwrap_or(i64::MAX);
        let (order, past) = super::events_order(filter.newest_first);
        let sql = format!(
            "SELECT id, product_id, payload, received_at FROM events
             WHERE received_at >= $1 AND ($2::text IS NULL OR product_id = $2)
               AND ($3::bigint IS NULL OR (received_at, id) {past} ($3, $4::text))
             ORDER BY received_at {order}, id {order} LIMIT $5"
        );
        let rows = query(
            &client,
            &sql,
            &[&filter.since, &filter.product, &after_at, &after_id, &limit],
        )
        .await?;
        let mut events = rows
            .iter()
            .map(|row| {
                Ok(from_columns!(row.try_get => StoredEvent {
                    id, product, payload, received_at,
                } + {
                    deliveries: Vec::new(),
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        // One pass over the deliveries for the whole batch.
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ANY($1)
             ORDER BY created_at, id"
        );
        for row in query(&client, &sql, &[&ids]).await? {
            let row = delivery_row(&row)?;
            if let Some(event) = events.iter_mut().find(|e| e.id == row.event_id) {
                event.deliveries.push(row);
            }
        }
        Ok(events)
    }

    async fn enqueue(
        &self,
        event_id: &str,
        deliveries: &[NewDelivery],
        now: Millis,
    ) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let rows = query(&tx, sql::PRODUCT_OF_EVENT, &[&event_id]).await?;
        let row = rows.first().ok_or_else(|| no_event(event_id))?;
        let product: String = row.try_get(0)?;
        let product = product.as_str();
        let queued: Vec<NewRow<'_>> = deliveries
            .iter()
            .map(|d| (event_id, product, d, now))
            .collect();
        let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
        let stored = query(&tx, "SELECT id FROM deliveries WHERE id = ANY($1)", &[&ids]).await?;
        let stored = ids_of(&stored)?;
        let added = insert_deliveries(&tx, &[], &queued, true).await?;
        let arrival = Arrival {
            event_id,
            product,
            at: now,
        };
        for delivery in deliveries.iter().filter(|d| !stored.contains(&d.id)) {
            // Shaped as at the intake, arriving now.
            shaping::shape_new(&tx, &arrival, delivery).await?;
        }
        if added > 0 {
            notify_due(&tx).await?;
        }
        tx.commit().await?;
        Ok(usize::try_from(added).unwrap_or(usize::MAX))
    }

    async fn check_writable(&self, now: Millis) -> Result<()> {
        execute(&self.client().await?, sql::MARK_WRITABLE, &[&now]).await?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<Millis>> {
        let rows = query(&self.client().await?, "SELECT MIN(due_at) FROM lanes", &[]).await?;
        Ok(rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()?
            .flatten())
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let status = filter.status.map(Status::as_str);
        let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE true");
        let mut clauses: Vec<(&str, &(dyn ToSql + Sync))> = Vec::new();
        if let Some(status) = &status {
            clauses.push(("status =", status));
        }
        if let Some(service) = &filter.service {
            clauses.push(("service =", service));
        }
        if let Some(product) = &filter.product {
            clauses.push(("product_id =", product));
        }
        if let Some(since) = &filter.updated_since {
            clauses.push(("updated_at >=", since));
        }
        let mut params = Vec::with_capacity(clauses.len() + 2);
        for (clause, value) in clauses {
            params.push(value);
            sql.push_str(&format!(" AND {clause} ${}", params.len()));
        }
        if let Some((updated_at, id)) = &filter.after {
            params.push(updated_at);
            params.push(id);
            let (at, id) = (params.len() - 1, params.len());
            sql.push_str(&format!(" AND (updated_at, id) < (${at}, ${id})"));
        }
        sql.push_str(" ORDER BY updated_at DESC, id DESC");
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        let client = self.client().await?;
        let rows = client.query(&sql, &params).await?;
        rows.iter().map(delivery_row).collect()
    }

    async fn shaped_into(&self, id: &str) -> Result<Vec<DeliveryRow>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE replaced_by = $1
             ORDER BY created_at, seq"
        );
        let rows = query(&client, &sql, &[&id]).await?;
        rows.iter().map(delivery_row).collect()
    }

    async fn waiting(&self, id: &str, now: Millis) -> Result<Option<Waiting>> {
        let client = self.client().await?;
        let rows = query(&client, sql::DELIVERY_STATE, &[&id]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let state = from_columns!(row.try_get => DeliveryState {
            status, next_at, lease_until, lane, order_key,
        });
        if !state.is_queued()? {
            return Ok(None);
        }
        let behind = match state.held_by() {
            Some(key) => query(
                &client,
                "SELECT id FROM deliveries WHERE order_key = $1 AND next_at IS NOT NULL
                     AND status IN ('pending', 'failed') ORDER BY seq LIMIT 1",
                &[&key],
            )
            .await?
            .first()
            .map(|row| row.try_get(0))
            .transpose()?,
            None => None,
        };
        let lane = match &state.lane {
            Some(lane) => {
                let sql = format!("{LANES_AT} WHERE l.key = $2");
                let rows = query(&client, &sql, &[&now, lane]).await?;
                rows.first().map(lane_row).transpose()?
            }
            None => None,
        };
        Ok(Some(state.waiting(behind, lane, now)))
    }

    async fn delivery(&self, id: &str) -> Result<Option<(DeliveryRow, Vec<AttemptRecord>)>> {
        let client = self.client().await?;
        let found = query(
            &client,
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"),
            &[&id],
        )
        .await?;
        let Some(row) = found.first() else {
            return Ok(None);
        };
        let mut attempts = Vec::new();
        for row in query(
            &client,
            "SELECT number, at, duration_ms, target, outcome, status, error FROM attempts
             WHERE delivery_id = $1 ORDER BY seq",
            &[&id],
        )
        .await?
        {
            attempts.push(AttemptRecord {
                number: count(row.try_get(0)?),
                at: row.try_get(1)?,
                duration_ms: u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0),
                target: row.try_get(3)?,
                outcome: outcome_at(&row, 4)?,
                status: row
                    .try_get::<_, Option<i32>>(5)?
                    .and_then(|s| u16::try_from(s).ok()),
                error: row.try_get(6)?,
            });
        }
        Ok(Some((delivery_row(row)?, attempts)))
    }

    async fn activity(&self, product: &str, window: ActivityWindow) -> Result<Activity> {
        let ActivityWindow {
            since,
            durations_since,
        } = window;
        let limit = super::ACTIVITY_DURATIONS as i64;
        let (since_minute, recent_minute) = (minute_of(since), minute_of(durations_since));
        let counts_params: [&(dyn ToSql + Sync); 3] = [&product, &since_minute, &since];
        let durations_params: [&(dyn ToSql + Sync); 4] =
            [&product, &recent_minute, &durations_since, &limit];
        let statuses_params: [&(dyn ToSql + Sync); 1] = [&product];
        // Three reads of one product's history, each on a connection of its own, so the
        // database runs them side by side: the page waits for the slowest, not the sum.
        let (counts, durations, statuses) = futures::try_join!(
            self.query_alone(sql::ACTIVITY_COUNTS, &counts_params),
            self.query_alone(sql::RECENT_DURATIONS, &durations_params),
            self.query_alone(sql::STATUS_COUNTS, &statuses_params),
        )?;
        let mut activity = Activity::default();
        for row in counts {
            let n: i64 = row.try_get(2)?;
            let counted = (row.try_get(0)?, outcome_at(&row, 1)?, n.max(0) as u64);
            activity.counts.push(counted);
        }
        for row in durations {
            let duration: i64 = row.try_get(1)?;
            activity
                .durations
                .push((row.try_get(0)?, duration.max(0) as u64));
        }
        for row in statuses {
            let (status, n): (&str, i64) = (row.try_get(0)?, row.try_get(1)?);
            activity
                .by_status
                .push((status_of(status)?, n.max(0) as u64));
        }
        Ok(activity)
    }

    async fn event_payload(&self, id: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let rows = query(&client, "SELECT payload FROM events WHERE id = $1", &[&id]).await?;
        rows.first().map(|row| Ok(row.try_get(0)?)).transpose()
    }

    async fn redeliver(&self, id: &str, now: Millis) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let redelivered = redeliver_in(&tx, &[id.to_owned()], now).await?;
        if redelivered > 0 {
            notify_due(&tx).await?;
        }
        tx.commit().await?;
        Ok(redelivered > 0)
    }

    async fn stats(&self) -> Result<Stats> {
        let client = self.client().await?;
        let total = |rows: Vec<Row>| -> Result<u64> {
            let n: i64 = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let mut stats = Stats {
            events: total(query(&client, "SELECT COUNT(*) FROM events", &[]).await?)?,
            attempts: total(query(&client, "SELECT COUNT(*) FROM attempts", &[]).await?)?,
            ..Stats::default()
        };
        for row in query(
            &client,
            "SELECT service, status, COUNT(*) FROM deliveries GROUP BY service, status",
            &[],
        )
        .await?
        {
            let n: i64 = row.try_get(2)?;
            stats.by_service.push((
                row.try_get(0)?,
                status_of(row.try_get(1)?)?,
                u64::try_from(n).unwrap_or(0),
            ));
        }
        stats.tally();
        let due = query(
            &client,
            "SELECT MIN(next_at) FROM deliveries WHERE status IN ('pending', 'failed')",
            &[],
        )
        .await?;
        stats.next_due = due.first().map(|row| row.try_get(0)).transpose()?.flatten();
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout_testkit::postgres::TestSchema;

    async fn fresh() -> (TestSchema, PostgresStore) {
        let schema = TestSchema::create().await;
        let store = PostgresStore::open(&schema.url).await.unwrap();
        (schema, store)
    }

    crate::store::suite::store_suite!(open: fresh(), close: TestSchema::drop_schema);
    crate::store::upkeep_suite::upkeep_suite!(open: fresh(), close: TestSchema::drop_schema);
    crate::store::lanes_suite::lanes_suite!(open: fresh(), close: TestSchema::drop_schema);
    crate::store::fallback_suite::fallback_suite!(open: fresh(), close: TestSchema::drop_schema);
    crate::store::shaping_suite::shaping_suite!(open: fresh(), close: TestSchema::drop_schema);

    /// Whether the store's connections are encrypted.
    async fn encrypted(store: &PostgresStore) -> bool {
        let client = store.client().await.unwrap();
        let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        client.query_one(sql, &[]).await.unwrap().get(0)
    }

    #[tokio::test]
    async fn tls_to_a_server_whose_certificate_a_throwaway_ca_signed() {
        let ca = std::env::var("LOOKOUT_TEST_DATABASE_CA")
            .expect("LOOKOUT_TEST_DATABASE_CA: run under scripts/with-postgres.sh");
        let schema = TestSchema::create().await;
        let plain = PostgresStore::open(&schema.url).await.unwrap();
        assert!(!encrypted(&plain).await, "no sslmode: plain TCP");

        let verified = format!("{}&sslmode=verify-full&sslrootcert={ca}", schema.url);
        let store = PostgresStore::open(&verified).await.unwrap();
        assert!(encrypted(&store).await);
        // The connection that listens for new work, outside the pool, is encrypted too.
        let (listening, mut messages) = subscribe(&store.listener).await.unwrap();
        tokio::spawn(async move { while messages.next().await.is_some() {} });
        let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        let row = listening.query_one(sql, &[]).await;
        assert!(row.unwrap().get::<_, bool>(0), "the listener uses TLS");
        store.put_instance("p1", &suite_hook()).await.unwrap();
        assert!(store.product("p1").await.unwrap().is_some());

        let required = format!("{}&sslmode=require", schema.url);
        let store = PostgresStore::open(&required).await.unwrap();
        assert!(encrypted(&store).await, "any certificate, but encrypted");

        // The system's roots do not know a certificate made a minute ago.
        let unknown = format!("{}&sslmode=verify-full", schema.url);
        let err = PostgresStore::open(&unknown)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("certificate"), "{err}");
        schema.drop_schema().await;
    }

    fn suite_hook() -> StoredInstance {
        StoredInstance {
            name: "hook".to_owned(),
            service: "webhook".to_owned(),
            options: serde_json::json!({"urls": ["http://127.0.0.1:9/"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Attempts stored before their product and minute were (migration 0012) are filled
    /// in when this lookout opens the database, and counted.
    #[tokio::test]
    async fn attempts_stored_before_step_12_are_counted() {
        let schema = TestSchema::create().await;
        let db = schema.connect().await;
        db.batch_execute(
            "CREATE TABLE schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .unwrap();
        let (last, earlier) = MIGRATIONS.split_last().unwrap();
        assert_eq!(last.1, "attempt_minutes");
        for (version, name, sql) in earlier {
            db.batch_execute(sql).await.unwrap();
            let record = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";
            db.execute(record, &[version, name]).await.unwrap();
        }
        db.batch_execute(crate::store::suite::ATTEMPT_BEFORE_MINUTES)
            .await
            .unwrap();
        let store = PostgresStore::open(&schema.url).await.unwrap();
        crate::store::suite::attempts_before_minutes_are_counted(&store).await;
        drop((store, db));
        schema.drop_schema().await;
    }

    #[tokio::test]
    async fn migrations_are_applied_once_by_processes_starting_together() {
        let schema = TestSchema::create().await;
        let opened =
            futures::future::join_all((0..4).map(|_| PostgresStore::open(&schema.url))).await;
        assert!(
            opened.iter().all(Result::is_ok),
            "{:?}",
            opened.iter().find_map(|r| r.as_ref().err())
        );
        let db = schema.connect().await;
        let applied: Vec<(i32, String)> = db
            .query(
                "SELECT version, name FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let known: Vec<(i32, String)> = MIGRATIONS
            .iter()
            .map(|(version, name, _)| (*version, (*name).to_owned()))
            .collect();
        assert_eq!(applied, known, "each step once");

        // A database a newer lookout has migrated is left alone.
        db.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (99, 'future')",
            &[],
        )
        .await
        .unwrap();
        let refused = PostgresStore::open(&schema.url)
            .await
            .err()
            .expect("refused");
        assert!(refused.to_string().contains("newer lookout"), "{refused}");
        drop((opened, db));
        schema.drop_schema().await;
    }

    #[tokio::test]
    async fn leases_taken_over_are_counted_and_releases_are_not() {
        use crate::store::suite::accept_one;
        let schema = TestSchema::create().await;
        let store = PostgresStore::open(&schema.url).await.unwrap();
        accept_one(&store, "evt_1", &["msg_1", "msg_2"]).await;
        let t0 = 1_700_000_000_000;
        let lease = Duration::from_secs(1);
        let leased = store.claim(Lease::new("w1", t0, lease), 1).await.unwrap();
        assert_eq!(leased.len(), 1);
        let leased = store.claim(Lease::new("w2", t0, lease), 1).await.unwrap();
        assert_eq!(leased.len(), 1);
        store.release("w2").await.unwrap();
        // w1 died: its lease runs out; w2's was handed back.
        let again = store
            .claim(Lease::new("w3", t0 + 1_000, lease), 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 2);
        let db = schema.connect().await;
        let counted: Vec<(String, i32)> = db
            .query("SELECT id, lease_expiries FROM deliveries ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let expired: Vec<&str> = counted
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(expired.len(), 1, "{counted:?}");
        drop((store, db));
        schema.drop_schema().await;
    }

    /// A finish whose lane row a claim holds waits for that claim and decides on what it
    /// committed. A `WHERE` on the row's time would read the version from before the
    /// claim (here: due at once), skip the row without waiting, and leave the retry it
    /// just scheduled in a lane the claim marked as having nothing left: never attempted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_finish_decides_on_the_lane_a_concurrent_claim_commits() {
        use crate::store::suite::{T0, accept_one, finished};
        let schema = TestSchema::create().await;
        let store = Arc::new(PostgresStore::open(&schema.url).await.unwrap());
        accept_one(store.as_ref(), "evt_1", &["msg_1"]).await;
        let lease = Duration::from_secs(60);
        let leased = store.claim(Lease::new("w1", T0, lease), 10).await.unwrap();
        assert_eq!(leased.len(), 1);
        let mut claimer = schema.connect().await;
        let lane: String = claimer
            .query_one("SELECT lane FROM deliveries WHERE id = 'msg_1'", &[])
            .await
            .unwrap()
            .get(0);
        // As another claim left it a moment ago: due at once.
        claimer
            .execute("UPDATE lanes SET due_at = 0 WHERE key = $1", &[&lane])
            .await
            .unwrap();

        // A claim holds the lane ...
        let holding = claimer.transaction().await.unwrap();
        holding
            .execute("SELECT 1 FROM lanes WHERE key = $1 FOR UPDATE", &[&lane])
            .await
            .unwrap();
        // ... while the attempt's outcome, a retry, is recorded.
        let retry = Finish {
            next_at: Some(T0 + 5_000),
            ..finished(Status::Failed, 1)
        };
        let finishing = {
            let store = store.clone();
            tokio::spawn(async move { store.finish("msg_1", "w1", &retry).await })
        };
        let watcher = schema.connect().await;
        let started = std::time::Instant::now();
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 || finishing.is_finished() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "finish never ran"
            );
            tokio::task::yield_now().await;
        }
        // The claim saw nothing else due in the lane (the retry was not committed yet).
        holding
            .execute("UPDATE lanes SET due_at = NULL WHERE key = $1", &[&lane])
            .await
            .unwrap();
        holding.commit().await.unwrap();
        finishing.await.unwrap().unwrap();

        let retried = store
            .claim(Lease::new("w2", T0 + 5_000, lease), 10)
            .await
            .unwrap();
        assert_eq!(retried.len(), 1, "the retry is claimable when due");
        drop((store, claimer, watcher));
        schema.drop_schema().await;
    }

    /// A claim's lanes are settled in the claim's own transaction, even by a connection
    /// that never prepared the statement: it is what keeps a delivery queued meanwhile
    /// from being hidden in a lane marked as having nothing left. The rows one
    /// transaction writes carry its id (`xmin`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_settles_its_lanes_inside_its_transaction() {
        use crate::store::suite::{T0, accept_one};
        let schema = TestSchema::create().await;
        let intake = PostgresStore::open(&schema.url).await.unwrap();
        accept_one(&intake, "evt_1", &["msg_1"]).await;
        // A store just opened: none of its connections has prepared a claim's statements.
        let worker = PostgresStore::open(&schema.url).await.unwrap();
        let claimed = worker
            .claim(Lease::new("w1", T0, Duration::from_secs(60)), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let db = schema.connect().await;
        let row = db
            .query_one(
                "SELECT d.xmin::text, l.xmin::text, l.served_at FROM deliveries d
                 JOIN lanes l ON l.key = d.lane WHERE d.id = 'msg_1'",
                &[],
            )
            .await
            .unwrap();
        let (leased_by, settled_by): (String, String) = (row.get(0), row.get(1));
        assert_eq!(
            row.get::<_, Option<Millis>>(2),
            Some(T0),
            "the lane was served"
        );
        assert_eq!(
            leased_by, settled_by,
            "the lease and the lane's settling are one transaction"
        );
        drop((intake, worker, db));
        schema.drop_schema().await;
    }

    /// Intakes and batches of outcomes write the same lanes at once without ever waiting
    /// on each other in a circle (PostgreSQL would abort one: a 503 for a sender, or
    /// outcomes recorded again later). Bounded: 300 intakes of two events, one per lane.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn intakes_and_outcomes_share_lanes_without_deadlock() {
        use crate::store::suite::{delivery, finished};
        let products = ["p1", "p2"];
        let events = move |round: usize| {
            products
                .map(|product| NewEvent {
                    id: format!("evt_{product}_{round}"),
                    deliveries: vec![delivery(product, &format!("msg_{product}_{round}"))],
                    ..event(product)
                })
                .to_vec()
        };
        let hooks = products.map(|product| (product, "hook"));
        race_intakes_with_outcomes(&hooks, events, |_| finished(Status::Delivered, 1), 2).await;
    }

    /// The same when outcomes store fallbacks: a dead `b-chat` delivery falls back to
    /// `a-mail`, a lane an intake locks before `b-chat`'s. The finish must take both in
    /// the intake's order (order keys, then lanes, each sorted), not its own lane first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn intakes_and_outcomes_with_fallbacks_share_lanes_without_deadlock() {
        use crate::store::suite::finished;
        let events = |round: usize| {
            let to = |instance: &str| {
                let id = format!("msg_{instance}_{round}");
                NewDelivery::in_own_lane("p1", &id, instance, "webhook")
            };
            vec![NewEvent {
                id: format!("evt_{round}"),
                deliveries: vec![to("b-chat"), to("a-mail")],
                ..event("p1")
            }]
        };
        let outcome = |claimed: &Claimed| match claimed.instance.as_str() {
            "b-chat" => Finish {
                fallback: Some(NewDelivery::in_own_lane(
                    "p1",
                    &format!("fb_{}", claimed.id),
                    "a-mail",
                    "webhook",
                )),
                ..finished(Status::Dead, 1)
            },
            _ => finished(Status::Delivered, 1),
        };
        let hooks = [("p1", "a-mail"), ("p1", "b-chat")];
        // Each event's two deliveries, and the fallback of its dead one.
        race_intakes_with_outcomes(&hooks, events, outcome, 3).await;
    }

    fn event(product: &str) -> NewEvent {
        NewEvent {
            id: String::new(),
            product: product.to_owned(),
            payload: "{}".to_owned(),
            received_at: crate::store::suite::T0,
            deliveries: Vec::new(),
            idempotency: None,
            routed_with: None,
            trace_context: None,
        }
    }

    /// Four intakes accept `events(round)` for 300 rounds while one worker claims and
    /// records `outcome` of each claimed delivery, until `per_round` deliveries a round
    /// are finished; any store error (a deadlock PostgreSQL broke) fails the test.
    async fn race_intakes_with_outcomes(
        hooks: &[(&str, &str)],
        events: impl Fn(usize) -> Vec<NewEvent> + Send + Sync + Copy + 'static,
        outcome: impl Fn(&Claimed) -> Finish,
        per_round: usize,
    ) {
        use crate::store::suite::{T0, hook};
        const ROUNDS: usize = 300;
        const INTAKES: usize = 4;
        let schema = TestSchema::create().await;
        let store = Arc::new(PostgresStore::open(&schema.url).await.unwrap());
        for &(product, name) in hooks {
            let url = format!("http://127.0.0.1:9/{product}/{name}");
            store
                .put_instance(product, &hook(name, &url))
                .await
                .unwrap();
        }
        let intakes: Vec<_> = (0..INTAKES)
            .map(|intake| {
                let store = store.clone();
                tokio::spawn(async move {
                    for round in (intake..ROUNDS).step_by(INTAKES) {
                        store.accept_batch(&events(round)).await.expect("an intake");
                    }
                })
            })
            .collect();
        let rule = crate::store::upkeep::DisableRule::default();
        let (mut finished_count, started) = (0, std::time::Instant::now());
        while finished_count < ROUNDS * per_round {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{finished_count} of {} deliveries finished",
                ROUNDS * per_round
            );
            // At the outcomes' time: a fallback is due when its dead letter is recorded.
            let claimed = store
                .claim(Lease::new("w1", T0 + 10, Duration::from_secs(60)), 64)
                .await
                .unwrap();
            if claimed.is_empty() {
                tokio::task::yield_now().await;
                continue;
            }
            let outcomes: Vec<(String, Finish)> =
                claimed.iter().map(|c| (c.id.clone(), outcome(c))).collect();
            store
                .finish_batch("w1", &outcomes, T0 + 10, &rule)
                .await
                .expect("a batch of outcomes");
            finished_count += outcomes.len();
        }
        for intake in intakes {
            intake.await.unwrap();
        }
        drop(store);
        schema.drop_schema().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listening_worker_wakes_at_once_for_an_event_accepted_elsewhere() {
        use lookout_testkit::CaptureServer;
        let schema = TestSchema::create().await;
        let intake = PostgresStore::open(&schema.url).await.unwrap();
        let workers: Arc<dyn Store> = Arc::new(PostgresStore::open(&schema.url).await.unwrap());
        let server = CaptureServer::start();
        let echo = StoredInstance {
            name: "hook".to_owned(),
            service: "echo".to_owned(),
            options: serde_json::json!({ "urls": [format!("{}/woken", server.url())] })
                .as_object()
                .cloned()
                .unwrap(),
        };
        intake.put_instance("p1", &echo).await.unwrap();
        let settings = lookout::Settings::default().allowing_loopback();
        let config = crate::policy::WorkerConfig {
            poll: Duration::from_secs(30),
            ..Default::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(crate::http::run_workers(
            workers,
            settings,
            config,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        // Let the workers find the queue empty and settle into their 30 s wait.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let event = crate::store::NewEvent {
            id: "evt_1".to_owned(),
            product: "p1".to_owned(),
            payload: lookout::samples::ALL[0].1.to_owned(),
            received_at: now_ms(),
            deliveries: vec![crate::store::NewDelivery::in_own_lane(
                "p1", "msg_1", "hook", "echo",
            )],
            idempotency: None,
            routed_with: None,
            trace_context: None,
        };
        intake.accept(&event).await.unwrap();
        while server.requests_to("/woken").is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the worker was not woken (it polls every 30 s)"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();
        println!("accepted → delivered by a LISTENing worker in {took:?}");
        assert!(took < Duration::from_secs(1), "woken after {took:?}");
        let _ = stop.send(());
        running.await.unwrap().unwrap();
        drop(intake);
        schema.drop_schema().await;
    }

    #[tokio::test]
    async fn bad_urls_and_unreachable_servers_are_errors_without_the_password() {
        let invalid = PostgresStore::open("postgres://u:pw-XYZ@host:notaport/db")
            .await
            .err()
            .expect("invalid");
        assert!(
            invalid.to_string().contains("invalid PostgreSQL URL"),
            "{invalid}"
        );
        // Port 9 on loopback: nothing listens there.
        let down = PostgresStore::open("postgres://u:pw-XYZ@127.0.0.1:9/db?connect_timeout=2")
            .await
            .err()
            .expect("unreachable");
        assert!(!down.to_string().contains("pw-XYZ"), "{down}");
        assert!(!invalid.to_string().contains("pw-XYZ"), "{invalid}");
    }
}
