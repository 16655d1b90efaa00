//! The embedded store: one SQLite file (WAL, `synchronous = FULL`, so a commit is on
//! disk before the intake answers 202). One connection serves the whole process; SQLite
//! runs one writer at a time anyway, and every call is short. Calls run on tokio's
//! blocking pool so they never stall the async workers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::columns::from_columns;
use super::deliveries::{DeliveryState, minute_of};
use super::sql::{self, DELIVERY_COLUMNS, LANES_AT};
use super::upkeep::{DisableRule, Fared};
use super::{
    Activity, ActivityWindow, Admission, AttemptOutcome, AttemptRecord, Claimed, DeliveryFilter,
    DeliveryRow, Disabled, DisabledTarget, EventFilter, Finish, Generation, IdempotencyKey, Lease,
    Millis, NewDelivery, NewEvent, Product, Result, Stats, Status, Store, StoreError, StoredEvent,
    StoredInstance, from_json, no_event, status_of, to_json,
};
use super::{ConsoleSession, LINK_COLUMNS, LINK_STILL_THERE, PortalLink, SESSION_COLUMNS};
use crate::lanes::{
    AT_ONCE, Claim, Due, DueLane, Lane, LaneNews, Pace, PaceState, SLOW_MS, Waiting,
    lanes_per_claim, news,
};
use crate::shaping::Arrival;
use crate::tokens::{NewToken, Token};

#[path = "sqlite_shaping.rs"]
mod shaping;
#[path = "sqlite_upkeep.rs"]
mod upkeep;

#[path = "sqlite_fallback.rs"]
mod fallback;

/// The schema, one step per `user_version`, each step a file of
/// server/migrations/sqlite/ (named like PostgreSQL's), or PostgreSQL's own where SQLite
/// takes it as it is. Append only: a shipped step never changes what it makes; a change
/// is a new file at the end.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    // API tokens, and the row `/healthz` writes.
    include_str!("../../migrations/sqlite/0002_tokens.sql"),
    // The console's indexes.
    include_str!("../../migrations/sqlite/0003_console.sql"),
    // Target health, alerts and retention (store/upkeep.rs), and idempotency keys:
    // PostgreSQL's files. SQLite's own differed only in writing INTEGER for BIGINT, which
    // SQLite reads alike (both have integer affinity), so stores made before and after
    // have the same columns.
    include_str!("../../migrations/postgres/0004_upkeep.sql"),
    include_str!("../../migrations/postgres/0005_idempotency.sql"),
    include_str!("../../migrations/sqlite/0006_config_generation.sql"),
    // Lanes (server/src/lanes.rs, docs/SERVING.md "Fairness and lanes"), and a generation
    // per product instead of one for all.
    include_str!("../../migrations/sqlite/0007_lanes.sql"),
    // The intake's trace context (a W3C `traceparent`), for the attempts to continue.
    include_str!("../../migrations/sqlite/0008_trace_context.sql"),
    // Console sessions and portal links, kept so that they can be ended: the same tables
    // as PostgreSQL's, so one file serves both.
    include_str!("../../migrations/postgres/0009_console_sessions.sql"),
    // Fallback routes (docs/SHAPING.md): the same columns as PostgreSQL's, one file.
    include_str!("../../migrations/postgres/0010_fallback.sql"),
    // Coalescing and digests (after the fallback routes' step).
    include_str!("../../migrations/sqlite/0011_shaping_windows.sql"),
    // Attempts carry their product and minute, for the overview's counts: one file for
    // both stores.
    include_str!("../../migrations/postgres/0012_attempt_minutes.sql"),
];

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// What the intake looks up for each request (its product, a token) is read on a
    /// connection of its own, so that it never waits for a commit's fsync (in WAL mode
    /// a reader sees the last commit while the next one is written).
    reader: Arc<Mutex<Connection>>,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        backend(err)
    }
}

impl rusqlite::types::FromSql for AttemptOutcome {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_owned();
        let (conn, reader) = tokio::task::spawn_blocking(move || {
            let conn = open_blocking(&path)?;
            Ok::<_, StoreError>((conn, open_reader(&path)?))
        })
        .await
        .map_err(backend)??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        Self::on(self.conn.clone(), f).await
    }

    /// Runs `f` in one write transaction on the blocking pool (see [`write_in`]).
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.call(move |conn| write_in(conn, f)).await
    }

    /// Deletes what each of `deletes` selects by `id` (its one parameter), in order and
    /// in one transaction; whether the last one removed anything (the row the ones
    /// before it belonged to).
    async fn remove<const N: usize>(&self, id: &str, deletes: [&'static str; N]) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            let mut removed = 0;
            for delete in deletes {
                removed = tx.prepare_cached(delete)?.execute([&id])?;
            }
            Ok(removed > 0)
        })
        .await
    }

    /// [`SqliteStore::call`] on the reading connection.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        Self::on(self.reader.clone(), f).await
    }

    async fn on<T, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(backend)?
    }
}

/// Runs `f` in one transaction, committed if `f` succeeds. The transaction takes the
/// write lock at once: one that read first and wrote later could find another writer
/// in between, and fail instead of waiting for it.
fn write_in<T>(conn: &mut Connection, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done = f(&tx)?;
    tx.commit()?;
    Ok(done)
}

/// Prepared statements a connection keeps: every statement of the intake's and the
/// workers' paths (more than rusqlite's default of 16, past which each would be parsed
/// again and again).
const STATEMENTS_KEPT: usize = 128;

fn open_blocking(path: &Path) -> Result<Connection> {
    create_private(path)?;
    let mut conn = Connection::open(path)
        .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
    // Only takes effect before the first table exists: new files give pruned pages
    // back to the file system (`reclaim_space`); older ones are converted once there.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    // Operator commands write while `serve` runs: wait for the other writer.
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(backend(format!("cannot switch {} to WAL", path.display())));
    }
    // FULL: a committed transaction survives power loss, not only a crash of the process.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    write_in(&mut conn, migrate)?;
    // The WAL and SHM files exist now; a database made before (or by another tool)
    // may have been readable by everyone.
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        make_private(Path::new(&file))?;
    }
    Ok(conn)
}

/// A second connection to the (migrated) database, for reading only.
fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// Takes away every permission of group and others on a file of ours; refuses a file
/// another user owns (they could read or swap it). A missing file is left missing.
pub(crate) fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let Ok(metadata) = std::fs::symlink_metadata(path) else {
            return Ok(());
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if metadata.uid() != me {
            return Err(backend(format!(
                "{} belongs to another user (uid {}): refusing to use it",
                path.display(),
                metadata.uid()
            )));
        }
        if metadata.mode() & 0o077 != 0 {
            let private = std::fs::Permissions::from_mode(metadata.mode() & 0o700);
            std::fs::set_permissions(path, private)
                .map_err(|e| backend(format!("cannot make {} private: {e}", path.display())))?;
        }
    }
    Ok(())
}

/// The database holds every product's secrets: a new file is readable by its owner only
/// (SQLite gives its `-wal` and `-shm` files the same permissions).
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(backend(format!("cannot create {}: {err}", path.display()))),
    }
}

fn migrate(tx: &Transaction<'_>) -> Result<()> {
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(backend(format!(
            "the database is from a newer lookout (schema {version}, this one knows {})",
            MIGRATIONS.len()
        )));
    }
    for step in &MIGRATIONS[version..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    Ok(())
}

const TOKEN_COLUMNS: &str = "id, scope, products, created_at, expires_at";

type TokenColumns = (String, String, String, Millis, Option<Millis>);

fn token_columns(row: &Row<'_>) -> rusqlite::Result<TokenColumns> {
    row.try_into()
}

fn token_row((id, scope, products, created_at, expires_at): TokenColumns) -> Result<Token> {
    Ok(Token {
        id,
        scope: scope.parse().map_err(StoreError::Corrupt)?,
        products: from_json(&products)?,
        created_at,
        expires_at,
    })
}

fn session_row(row: &Row<'_>) -> rusqlite::Result<ConsoleSession> {
    Ok(from_columns!(row.get => ConsoleSession { id, product, link, created_at, expires_at }))
}

fn link_row(row: &Row<'_>) -> rusqlite::Result<PortalLink> {
    Ok(from_columns!(row.get => PortalLink { id, product, created_at, expires_at }))
}

/// A row selected with [`DELIVERY_COLUMNS`]; the status is decoded by the caller.
fn delivery_row(row: &Row<'_>) -> rusqlite::Result<(DeliveryRow, String)> {
    let delivery = from_columns!(row.get => DeliveryRow {
        id, event_id, product, instance, service, next_at, created_at, updated_at,
        last_error, ordered, replaced_by,
    } + {
        attempts: row.get(11)?,
        digest_events: row.get(12)?,
        status: Status::Pending,
        fell_back_to: super::fallback::link(row.get(14)?, row.get(15)?),
        fallback_for: super::fallback::link(row.get(16)?, row.get(17)?),
    });
    Ok((delivery, row.get(13)?))
}

/// Column `index`, a count or a duration: never negative.
fn count_at(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(row.get::<_, i64>(index)?.max(0) as u64)
}

/// Every row `sql` selects with `params`, each read by `read`.
fn select<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params, read)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn with_status((mut row, status): (DeliveryRow, String)) -> Result<DeliveryRow> {
    row.status = status_of(&status)?;
    Ok(row)
}

fn ensure_product(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO products (id, created_at) VALUES (?1, ?2)",
        params![id, super::now_ms()],
    )?;
    Ok(())
}

/// Gives `product` the next [`Generation`]: every change to its services or alerts
/// does, so that an event routed with its old services is routed again. The values come
/// from one counter, so a product removed and made again never repeats one.
fn bump_generation(tx: &rusqlite::Transaction<'_>, product: &str) -> Result<()> {
    tx.prepare_cached("UPDATE config_generation SET generation = generation + 1")?
        .execute([])?;
    tx.prepare_cached(
        "UPDATE products SET generation = (SELECT generation FROM config_generation)
         WHERE id = ?1",
    )?
    .execute([product])?;
    Ok(())
}

fn insert_instance(
    tx: &rusqlite::Transaction<'_>,
    product: &str,
    instance: &StoredInstance,
) -> Result<()> {
    tx.execute(
        sql::PUT_INSTANCE,
        params![
            product,
            instance.name,
            instance.service,
            to_json(&instance.options)
        ],
    )?;
    // New options may well point somewhere else: give every target a fresh start.
    tx.execute(sql::FORGET_DISABLED, params![product, instance.name])?;
    Ok(())
}

fn load_product(conn: &Connection, id: &str) -> Result<Option<Product>> {
    let settings = conn
        .query_row(sql::PRODUCT_SETTINGS, [id], |row| row.try_into())
        .optional()?;
    let Some(settings) = settings else {
        return Ok(None);
    };
    let services = select(conn, sql::PRODUCT_INSTANCES, [id], |row| row.try_into())?;
    let disabled = select(conn, sql::PRODUCT_DISABLED, [id], |row| {
        Ok(from_columns!(row.get => DisabledTarget { instance, key, target, reason, at }))
    })?;
    Product::from_stored(id, settings, services, disabled).map(Some)
}

/// The product's generation now; `None` if there is no such product.
fn generation_of(conn: &Connection, product: &str) -> Result<Option<Generation>> {
    Ok(conn
        .prepare_cached("SELECT generation FROM products WHERE id = ?1")?
        .query_row([product], |row| row.get(0))
        .optional()?)
}

/// The claims' details, in the order of `ids`: each delivery with its event, its
/// product's generation, and its service's disabled targets.
fn load_claimed(conn: &Connection, ids: &[String]) -> Result<Vec<Claimed>> {
    let sql = "SELECT d.id, d.event_id, d.product_id, d.instance, d.service, e.payload,
                d.attempts, d.step, p.generation, d.throttles, e.trace_context,
                d.fallback_for, d.lane, d.digest_events IS NOT NULL, d.done_targets
         FROM json_each(?1) j JOIN deliveries d ON d.id = j.value
         JOIN events e ON e.id = d.event_id
         LEFT JOIN products p ON p.id = d.product_id
         ORDER BY j.key";
    let rows = select(conn, sql, [to_json(&ids)], |row| {
        let claimed = from_columns!(row.get => Claimed {
            id, event_id, product, instance, service, payload, attempts, step, generation,
            throttles, trace_context, fallback_for,
        } + {
            lane: row.get::<_, Option<String>>(12)?.unwrap_or_default(),
            digest: row.get::<_, bool>(13)?.then(Vec::new),
            done_targets: Vec::new(),
            disabled_targets: Vec::new(),
        });
        Ok((claimed, row.get::<_, String>(14)?))
    })?;
    let mut claimed = Vec::with_capacity(rows.len());
    // Each service's disabled targets, read once per claim.
    let mut disabled: Vec<((String, String), Vec<String>)> = Vec::new();
    for (mut one, done) in rows {
        one.done_targets = from_json(&done)?;
        let service = (one.product.clone(), one.instance.clone());
        let known = match disabled.iter().position(|(s, _)| *s == service) {
            Some(known) => known,
            None => {
                let keys = select(
                    conn,
                    "SELECT target_key FROM disabled_targets
                     WHERE product_id = ?1 AND instance = ?2",
                    params![service.0, service.1],
                    |row| row.get(0),
                )?;
                disabled.push((service, keys));
                disabled.len() - 1
            }
        };
        one.disabled_targets = disabled[known].1.clone();
        if one.digest.is_some() {
            one.digest = Some(shaping::digest_payloads(conn, &one.id)?);
        }
        claimed.push(one);
    }
    Ok(claimed)
}

/// Records the event's idempotency key, unless it is already recorded: then what the
/// earlier event's key says.
fn claim_key(
    tx: &rusqlite::Transaction<'_>,
    event: &NewEvent,
    key: &IdempotencyKey,
) -> Result<Option<Admission>> {
    let claimed = tx
        .prepare_cached(sql::CLAIM_IDEMPOTENCY_KEY)?
        .query_row(
            params![
                event.product,
                key.key,
                key.digest,
                event.id,
                event.answer(),
                event.received_at,
                key.since
            ],
            |row| row.get::<_, String>(0),
        )
        .optional()?;
    if claimed.is_some() {
        return Ok(None);
    }
    let (digest, answer): (String, String) = tx
        .prepare_cached(sql::SAVED_ANSWER)?
        .query_row(params![event.product, key.key], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(Some(Admission::of_earlier(key, &digest, answer)))
}

/// One event of a batch: stored with its deliveries, or not (its key was seen).
fn accept_in(tx: &rusqlite::Transaction<'_>, event: &NewEvent) -> Result<Admission> {
    if let Some(routed) = event.routed_with
        && generation_of(tx, &event.product)? != Some(routed)
    {
        return Ok(Admission::Rerouted);
    }
    if let Some(key) = &event.idempotency
        && let Some(earlier) = claim_key(tx, event, key)?
    {
        return Ok(earlier);
    }
    tx.prepare_cached(
        "INSERT INTO events (id, product_id, payload, received_at, trace_context)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        event.id,
        event.product,
        event.payload,
        event.received_at,
        event.trace_context,
    ])?;
    for delivery in &event.deliveries {
        let due = event.received_at;
        insert_delivery(
            tx,
            INSERT_DELIVERY,
            &event.id,
            &event.product,
            delivery,
            due,
        )?;
        let arrival = Arrival {
            event_id: &event.id,
            product: &event.product,
            at: due,
        };
        shaping::shape_new(tx, &arrival, delivery)?;
    }
    Ok(Admission::Stored)
}

const INSERT_DELIVERY: &str = "INSERT INTO deliveries (id, event_id, product_id, instance,
         service, status, next_at, created_at, updated_at, lane, order_key)
     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7, ?8, ?9)";

/// Stores a new delivery due at `due`, or held (due when the one before it is finished)
/// while another delivery of its order key is queued; `insert` is [`INSERT_DELIVERY`]
/// or a variant of it. Its lane is made due by the caller ([`queue_in_lanes`]).
fn insert_delivery(
    tx: &rusqlite::Transaction<'_>,
    insert: &str,
    event_id: &str,
    product: &str,
    delivery: &NewDelivery,
    due: Millis,
) -> Result<usize> {
    let held = match &delivery.order_key {
        Some(key) => key_is_busy(tx, key, &delivery.id)?,
        None => false,
    };
    Ok(tx.prepare_cached(insert)?.execute(params![
        delivery.id,
        event_id,
        product,
        delivery.instance,
        delivery.service,
        (!held).then_some(due),
        due,
        delivery.lane.key,
        delivery.order_key
    ])?)
}

/// Whether a delivery of this order key other than `except` is queued.
fn key_is_busy(tx: &rusqlite::Transaction<'_>, key: &str, except: &str) -> Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE order_key = ?1 AND id != ?2
                 AND status IN ('pending', 'failed'))",
        )?
        .query_row(params![key, except], |row| row.get(0))?)
}

/// Creates or updates the lanes of `deliveries` (of `product`), each due by `due`.
fn queue_in_lanes<'a>(
    tx: &rusqlite::Transaction<'_>,
    product: &str,
    deliveries: impl IntoIterator<Item = &'a NewDelivery>,
    due: Millis,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for lane in deliveries.into_iter().map(|d| &d.lane) {
        if !seen.insert(&lane.key) {
            continue;
        }
        tx.prepare_cached(
            "INSERT INTO lanes (key, product_id, destination, every_ms, burst, cap, due_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (key) DO UPDATE SET destination = excluded.destination,
                 every_ms = excluded.every_ms, burst = excluded.burst, cap = excluded.cap,
                 due_at = MIN(COALESCE(due_at, excluded.due_at), excluded.due_at)",
        )?
        .execute(params![
            lane.key,
            product,
            lane.destination,
            lane.pace.every_ms,
            lane.pace.burst,
            lane.cap,
            due
        ])?;
        tx.prepare_cached("INSERT OR IGNORE INTO paces (destination) VALUES (?1)")?
            .execute([&lane.destination])?;
    }
    Ok(())
}

/// Makes a lane due by `at` (a delivery in it may be claimable then).
fn lane_due_by(tx: &rusqlite::Transaction<'_>, lane: &str, at: Millis) -> Result<()> {
    tx.prepare_cached(
        "UPDATE lanes SET due_at = ?2 WHERE key = ?1 AND (due_at IS NULL OR due_at > ?2)",
    )?
    .execute(params![lane, at])?;
    Ok(())
}

/// The delivery of `key` that was held longest is due now, unless one of the key is
/// already due or leased (a redelivered one); its lane is made due.
fn release_key(tx: &rusqlite::Transaction<'_>, key: &str, now: Millis) -> Result<()> {
    let promoted: Option<Option<String>> = tx
        .prepare_cached(
            "UPDATE deliveries SET next_at = ?2 WHERE rowid = (
                 SELECT rowid FROM deliveries WHERE order_key = ?1 AND next_at IS NULL
                     AND status IN ('pending', 'failed') ORDER BY rowid LIMIT 1)
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE order_key = ?1
                     AND next_at IS NOT NULL AND status IN ('pending', 'failed'))
             RETURNING lane",
        )?
        .query_row(params![key, now], |row| row.get(0))
        .optional()?;
    if let Some(Some(lane)) = promoted {
        lane_due_by(tx, &lane, AT_ONCE)?;
    }
    Ok(())
}

/// What recording one finished attempt found: the delivery's lane (if it has one),
/// and the targets its failures disabled.
struct Recorded {
    lane: Option<String>,
    disabled: Vec<Disabled>,
}

/// Where a delivery belongs: its product, instance, lane and order key (the last two
/// `None` for one stored before lanes, or without a key).
type Placing = (String, String, Option<String>, Option<String>);

/// The [`Placing`] of delivery `id`; `None` if there is no such delivery.
fn placing(tx: &Transaction<'_>, id: &str) -> Result<Option<Placing>> {
    Ok(tx
        .prepare_cached(
            "SELECT product_id, instance, lane, order_key FROM deliveries WHERE id = ?1",
        )?
        .query_row([id], |row| Placing::try_from(row))
        .optional()?)
}

/// One finished attempt of a batch (see [`Store::finish_batch`]); `None` for an
/// unknown delivery.
fn finish_in(
    tx: &rusqlite::Transaction<'_>,
    (id, finish): &(String, Finish),
    owner: &str,
    now: Millis,
    rule: &DisableRule,
) -> Result<Option<Recorded>> {
    let Some((product, instance, lane, order_key)) = placing(tx, id)? else {
        return Ok(None);
    };
    let mut insert = tx.prepare_cached(
        "INSERT INTO attempts (delivery_id, number, at, duration_ms, target, outcome, status,
             error, product_id, minute)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?3 - ?3 % 60000)",
    )?;
    for attempt in &finish.attempts {
        insert.execute(params![
            id,
            attempt.number,
            attempt.at,
            attempt.duration_ms as i64,
            attempt.target,
            attempt.outcome.as_str(),
            attempt.status,
            attempt.error,
            product
        ])?;
    }
    for target in &finish.disable {
        disable_target(tx, &product, target)?;
    }
    let fared = Fared {
        product: &product,
        instance: &instance,
        results: &finish.health,
        now,
    };
    let disabled = upkeep::record_health(tx, &fared, rule)?
        .into_iter()
        .map(|target| Disabled {
            product: product.clone(),
            delivery: id.clone(),
            target,
        })
        .collect();
    let attempted = u32::from(!finish.attempts.is_empty());
    let changed = tx
        .prepare_cached(
            "UPDATE deliveries SET status = ?3, next_at = ?4, step = ?5, done_targets = ?6,
                 last_error = ?7, attempts = attempts + ?8, updated_at = ?9,
                 throttles = throttles + ?10, lease_owner = NULL, lease_until = NULL
             WHERE id = ?1 AND lease_owner = ?2",
        )?
        .execute(params![
            id,
            owner,
            finish.status.as_str(),
            finish.next_at,
            finish.step,
            to_json(&finish.done_targets),
            finish.last_error,
            attempted,
            now,
            u32::from(finish.throttled)
        ])?;
    if changed > 0
        && !finish.status.is_queued()
        && let Some(key) = &order_key
    {
        release_key(tx, key, now)?;
    }
    if changed > 0
        && super::fallback::falls_back(finish.status)
        && let Some(fallback) = &finish.fallback
    {
        fallback::enqueue_in(tx, id, fallback, now)?;
    }
    Ok(Some(Recorded { lane, disabled }))
}

/// Disables one target of `product` (it answered "gone", or kept failing).
fn disable_target(
    tx: &rusqlite::Transaction<'_>,
    product: &str,
    target: &DisabledTarget,
) -> Result<()> {
    tx.prepare_cached(sql::DISABLE_TARGET)?.execute(params![
        product,
        target.instance,
        target.key,
        target.target,
        target.reason,
        target.at
    ])?;
    Ok(())
}

/// After a batch of attempts, each lane's [`LaneNews`]: its answer time counts, a slot
/// is free (the lane is due), and a wait its destination asked for moves the schedule.
fn settle_finished(tx: &rusqlite::Transaction<'_>, news: &LaneNews) -> Result<()> {
    let (lane, latency) = (&news.lane, news.latency_ms);
    // Written only when something changes: a lane already due, and fast, is left alone.
    tx.prepare_cached(
        "UPDATE lanes SET
             latency_ms = CASE WHEN ?2 IS NULL OR (?2 <= ?4 AND latency_ms <= ?4) THEN latency_ms
                 WHEN latency_ms = 0 THEN ?2 ELSE (latency_ms * 4 + ?2) / 5 END,
             due_at = ?3
         WHERE key = ?1 AND (due_at IS NULL OR due_at > ?3 OR ?2 > ?4 OR latency_ms > ?4)",
    )?
    .execute(params![lane, latency, AT_ONCE, SLOW_MS])?;
    let Some(until) = news.hold_until else {
        return Ok(());
    };
    let pace: Option<(String, Millis, u32)> = tx
        .prepare_cached("SELECT destination, every_ms, burst FROM lanes WHERE key = ?1")?
        .query_row([lane], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    if let Some((destination, every_ms, burst)) = pace {
        let tat: Millis = tx
            .prepare_cached("SELECT tat FROM paces WHERE destination = ?1")?
            .query_row([&destination], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        let mut state = PaceState {
            pace: Pace { every_ms, burst },
            tat,
        };
        state.hold(until);
        tx.prepare_cached(sql::PUT_PACE)?
            .execute(params![destination, state.tat])?;
    }
    Ok(())
}

fn lane_row(row: &Row<'_>) -> rusqlite::Result<DueLane> {
    Ok(from_columns!(row.get => DueLane {
        key, destination, tat, latency_ms, due_at, cap, in_flight,
    } + {
        pace: Pace {
            every_ms: row.get(7)?,
            burst: row.get(8)?,
        },
    }))
}

/// The lanes due at `now` a claim of `limit` looks at, served longest ago first.
fn due_lanes(tx: &rusqlite::Transaction<'_>, now: Millis, limit: usize) -> Result<Vec<DueLane>> {
    let sql = format!("{LANES_AT} WHERE l.due_at <= $1 ORDER BY l.served_at, l.key LIMIT $2");
    select(tx, &sql, params![now, lanes_per_claim(limit)], lane_row)
}

/// Up to `count` deliveries of `lane` due at `now` and not leased, earliest due first
/// (then in the order they were stored).
fn due_in_lane(
    tx: &rusqlite::Transaction<'_>,
    lane: &str,
    now: Millis,
    count: usize,
) -> Result<Vec<String>> {
    select(
        tx,
        "SELECT id FROM deliveries
         WHERE lane = ?1 AND status IN ('pending', 'failed') AND next_at <= ?2
           AND (lease_until IS NULL OR lease_until <= ?2)
         ORDER BY next_at LIMIT ?3",
        params![lane, now, count as i64],
        |row| row.get(0),
    )
}

/// When something in `lane` can next be claimed (see [`Due`]): its earliest due
/// delivery that is not leased, or the end of its earliest lease, whichever comes first;
/// a lane at its cap only at the end of a lease (or as any other, none being left).
fn lane_due_at(
    tx: &rusqlite::Transaction<'_>,
    lane: &str,
    due: Due,
    now: Millis,
) -> Result<Option<Millis>> {
    if let Due::At(at) = due {
        return Ok(Some(at));
    }
    let lease_end: Option<Millis> = tx
        .prepare_cached(
            "SELECT MIN(lease_until) FROM deliveries
             WHERE lane = ?1 AND lease_owner IS NOT NULL",
        )?
        .query_row([lane], |row| row.get(0))?;
    if due == Due::LeaseEnd && lease_end.is_some() {
        return Ok(lease_end);
    }
    let next: Option<Millis> = tx
        .prepare_cached(
            "SELECT next_at FROM deliveries
             WHERE lane = ?1 AND status IN ('pending', 'failed') AND next_at IS NOT NULL
               AND (lease_until IS NULL OR lease_until <= ?2)
             ORDER BY next_at LIMIT 1",
        )?
        .query_row(params![lane, now], |row| row.get(0))
        .optional()?;
    Ok([lease_end, next].into_iter().flatten().min())
}

/// Leases up to `limit` due deliveries to `owner` until `until` (see [`Store::claim`]
/// and [`Claim`]).
fn claim_in(
    tx: &Transaction<'_>,
    owner: &str,
    now: Millis,
    limit: usize,
    until: Millis,
) -> Result<Vec<Claimed>> {
    let mut claim = Claim::new(now, limit, due_lanes(tx, now, limit)?);
    let mut ids = Vec::with_capacity(limit);
    while let Some((lane, count)) = claim.ask() {
        let due = due_in_lane(tx, &lane, now, count)?;
        claim.took(due.len());
        ids.extend(due);
    }
    let claimed = if ids.is_empty() {
        Vec::new()
    } else {
        tx.prepare_cached(
            "UPDATE deliveries SET lease_owner = ?2, lease_until = ?3
             WHERE id IN (SELECT value FROM json_each(?1))",
        )?
        .execute(params![to_json(&ids), owner, until])?;
        load_claimed(tx, &ids)?
    };
    let (lanes, paces) = claim.settle();
    for lane in lanes {
        let due = lane_due_at(tx, &lane.key, lane.due, now)?;
        tx.prepare_cached(
            "UPDATE lanes SET due_at = ?2, served_at = CASE WHEN ?3 THEN ?4 ELSE served_at END
             WHERE key = ?1",
        )?
        .execute(params![lane.key, due, lane.served, now])?;
    }
    for (destination, tat) in paces {
        tx.prepare_cached("UPDATE paces SET tat = ?2 WHERE destination = ?1")?
            .execute(params![destination, tat])?;
    }
    Ok(claimed)
}

/// Hands back the leases of `owner` (every owner's, for `None`), due at once: their lanes
/// are made due.
fn release_leases(tx: &Transaction<'_>, owner: Option<&str>) -> Result<()> {
    tx.execute(
        "UPDATE lanes SET due_at = ?2 WHERE (due_at IS NULL OR due_at > ?2) AND key IN (
             SELECT lane FROM deliveries WHERE lease_owner IS NOT NULL
                 AND (?1 IS NULL OR lease_owner = ?1))",
        params![owner, AT_ONCE],
    )?;
    tx.execute(
        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner IS NOT NULL AND (?1 IS NULL OR lease_owner = ?1)",
        params![owner],
    )?;
    Ok(())
}

/// Makes one delivery due again at `now` with a fresh schedule (see
/// [`Store::redeliver`]); held instead while another delivery of its order key is
/// queued. One stored before lanes existed gets a lane of its own. False if there is no
/// such delivery.
fn redeliver_in(tx: &rusqlite::Transaction<'_>, id: &str, now: Millis) -> Result<bool> {
    let Some((product, instance, lane, order_key)) = placing(tx, id)? else {
        return Ok(false);
    };
    let held = match &order_key {
        Some(key) => key_is_busy(tx, key, id)?,
        None => false,
    };
    let lane = match lane {
        Some(lane) => lane,
        None => {
            let own = NewDelivery {
                id: id.to_owned(),
                instance: instance.clone(),
                service: String::new(),
                lane: Lane::own(&product, &instance),
                order_key: None,
                shape: None,
            };
            queue_in_lanes(tx, &product, [&own], now)?;
            own.lane.key
        }
    };
    tx.prepare_cached(
        "UPDATE deliveries SET status = 'pending', next_at = ?2, step = 0, lane = ?3,
             done_targets = CASE WHEN status = 'delivered' THEN '[]' ELSE done_targets END,
             lease_owner = NULL, lease_until = NULL, updated_at = ?4
         WHERE id = ?1",
    )?
    .execute(params![id, (!held).then_some(now), lane, now])?;
    lane_due_by(tx, &lane, now)?;
    Ok(true)
}

/// Runs `f` with commits that skip their fsync, then makes them durable again.
///
/// For writes that may be lost in a crash: a lease that is lost leaves its delivery due,
/// to be claimed again (at least once, as any crash). The WAL is written in order, so
/// the next durable commit makes everything before it durable as well; nothing committed
/// with an fsync can depend on one lost without.
fn without_fsync<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let result = f(conn);
    // Back to FULL whatever happened: every other commit must be on disk when it returns.
    conn.pragma_update(None, "synchronous", "FULL")?;
    result
}

#[async_trait]
impl Store for SqliteStore {
    async fn put_product(&self, id: &str, instances: &[StoredInstance]) -> Result<()> {
        let (id, instances) = (id.to_owned(), instances.to_vec());
        self.write(move |tx| {
            ensure_product(tx, &id)?;
            tx.execute(sql::REMOVE_INSTANCES, [&id])?;
            tx.execute(sql::REMOVE_DISABLED, [&id])?;
            for instance in &instances {
                insert_instance(tx, &id, instance)?;
            }
            bump_generation(tx, &id)?;
            Ok(())
        })
        .await
    }

    async fn put_instance(&self, product: &str, instance: &StoredInstance) -> Result<()> {
        let (product, instance) = (product.to_owned(), instance.clone());
        self.write(move |tx| {
            ensure_product(tx, &product)?;
            insert_instance(tx, &product, &instance)?;
            bump_generation(tx, &product)?;
            Ok(())
        })
        .await
    }

    async fn remove_instance(&self, product: &str, instance: &str) -> Result<bool> {
        let (product, instance) = (product.to_owned(), instance.to_owned());
        self.write(move |tx| {
            let removed = tx.execute(
                "DELETE FROM instances WHERE product_id = ?1 AND name = ?2",
                params![product, instance],
            )?;
            tx.execute(sql::FORGET_DISABLED, params![product, instance])?;
            bump_generation(tx, &product)?;
            Ok(removed > 0)
        })
        .await
    }

    async fn remove_product(&self, id: &str) -> Result<bool> {
        let deletes = [
            sql::REMOVE_INSTANCES,
            sql::REMOVE_DISABLED,
            sql::REMOVE_PRODUCT,
        ];
        self.remove(id, deletes).await
    }

    async fn product(&self, id: &str) -> Result<Option<Product>> {
        let id = id.to_owned();
        self.read(move |conn| load_product(conn, &id)).await
    }

    async fn products(&self) -> Result<Vec<Product>> {
        self.call(|conn| {
            let sql = "SELECT id FROM products ORDER BY id";
            let ids: Vec<String> = select(conn, sql, [], |row| row.get(0))?;
            let mut products = Vec::new();
            for id in ids {
                products.extend(load_product(conn, &id)?);
            }
            Ok(products)
        })
        .await
    }

    async fn accept_batch(&self, events: &[NewEvent]) -> Result<Vec<Admission>> {
        let events = events.to_vec();
        self.write(move |tx| {
            let mut admissions = Vec::with_capacity(events.len());
            for event in &events {
                admissions.push(accept_in(tx, event)?);
            }
            // Their lanes once for the batch (most events of a batch share a few).
            let stored = events
                .iter()
                .zip(&admissions)
                .filter(|(_, admission)| **admission == Admission::Stored);
            let mut by_product: Vec<(&str, Millis, Vec<&NewDelivery>)> = Vec::new();
            for (event, _) in stored {
                let product = event.product.as_str();
                match by_product.iter_mut().find(|(p, ..)| *p == product) {
                    Some((_, due, deliveries)) => {
                        *due = (*due).min(event.received_at);
                        deliveries.extend(&event.deliveries);
                    }
                    None => {
                        let deliveries = event.deliveries.iter().collect();
                        by_product.push((product, event.received_at, deliveries));
                    }
                }
            }
            for (product, due, deliveries) in by_product {
                queue_in_lanes(tx, product, deliveries, due)?;
            }
            Ok(admissions)
        })
        .await
    }

    async fn claim(&self, lease: Lease<'_>, limit: usize) -> Result<Vec<Claimed>> {
        let (owner, now, until) = (lease.owner.to_owned(), lease.now, lease.until());
        self.call(move |conn| {
            without_fsync(conn, |conn| {
                write_in(conn, |tx| claim_in(tx, &owner, now, limit, until))
            })
        })
        .await
    }

    async fn finish_batch(
        &self,
        owner: &str,
        finished: &[(String, Finish)],
        now: Millis,
        rule: &DisableRule,
    ) -> Result<Vec<Disabled>> {
        let (owner, finished, rule) = (owner.to_owned(), finished.to_vec(), *rule);
        self.write(move |tx| {
            let mut lanes = Vec::with_capacity(finished.len());
            let mut disabled = Vec::new();
            for one in &finished {
                let Some(recorded) = finish_in(tx, one, &owner, now, &rule)? else {
                    continue;
                };
                disabled.extend(recorded.disabled);
                lanes.extend(recorded.lane.map(|lane| (lane, &one.1)));
            }
            for news in news(lanes.iter().map(|(lane, finish)| finish.heard(lane))) {
                settle_finished(tx, &news)?;
            }
            Ok(disabled)
        })
        .await
    }

    async fn release(&self, owner: &str) -> Result<()> {
        let owner = owner.to_owned();
        self.write(move |tx| release_leases(tx, Some(&owner))).await
    }

    async fn release_all(&self) -> Result<()> {
        self.write(|tx| release_leases(tx, None)).await
    }

    async fn put_token(&self, new: &NewToken) -> Result<()> {
        let new = new.clone();
        self.call(move |conn| {
            let token = &new.token;
            conn.execute(
                sql::PUT_TOKEN,
                params![
                    token.id,
                    new.digest,
                    token.scope.as_str(),
                    to_json(&token.products),
                    token.created_at,
                    token.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<Token>> {
        let digest = digest.to_owned();
        self.read(move |conn| {
            let found = conn
                .query_row(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = ?1"),
                    [&digest],
                    token_columns,
                )
                .optional()?;
            found.map(token_row).transpose()
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<Token>> {
        self.call(|conn| {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id");
            let rows = select(conn, &sql, [], token_columns)?;
            rows.into_iter().map(token_row).collect()
        })
        .await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool> {
        self.remove(id, ["DELETE FROM tokens WHERE id = ?1"]).await
    }

    async fn put_session(&self, session: &ConsoleSession, digest: &str) -> Result<bool> {
        let (session, digest) = (session.clone(), digest.to_owned());
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM console_sessions WHERE expires_at <= ?1",
                [session.created_at],
            )?;
            // Only while its link (if any) is there: a revoked link opens nothing.
            let stored = tx.execute(
                "INSERT INTO console_sessions
                     (id, digest, product, link_id, created_at, expires_at)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6
                 WHERE ?4 IS NULL OR EXISTS
                     (SELECT 1 FROM portal_links WHERE id = ?4 AND expires_at > ?5)",
                params![
                    session.id,
                    digest,
                    session.product,
                    session.link,
                    session.created_at,
                    session.expires_at
                ],
            )?;
            Ok(stored > 0)
        })
        .await
    }

    async fn session_by_digest(&self, digest: &str, now: Millis) -> Result<Option<ConsoleSession>> {
        let digest = digest.to_owned();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM console_sessions s
                 WHERE digest = ?1 AND expires_at > ?2 AND {LINK_STILL_THERE}"
            );
            Ok(conn
                .query_row(&sql, params![digest, now], session_row)
                .optional()?)
        })
        .await
    }

    async fn sessions(&self, now: Millis) -> Result<Vec<ConsoleSession>> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM console_sessions s
                 WHERE expires_at > ?1 AND {LINK_STILL_THERE} ORDER BY created_at, id"
            );
            select(conn, &sql, [now], session_row)
        })
        .await
    }

    async fn end_session(&self, id: &str) -> Result<bool> {
        self.remove(id, ["DELETE FROM console_sessions WHERE id = ?1"])
            .await
    }

    async fn put_link(&self, link: &PortalLink) -> Result<()> {
        let link = link.clone();
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM portal_links WHERE expires_at <= ?1",
                [link.created_at],
            )?;
            tx.execute(
                sql::PUT_LINK,
                params![link.id, link.product, link.created_at, link.expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn link(&self, id: &str) -> Result<Option<PortalLink>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let sql = format!("SELECT {LINK_COLUMNS} FROM portal_links WHERE id = ?1");
            Ok(conn.query_row(&sql, [&id], link_row).optional()?)
        })
        .await
    }

    async fn links(&self, now: Millis) -> Result<Vec<PortalLink>> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {LINK_COLUMNS} FROM portal_links WHERE expires_at > ?1
                 ORDER BY created_at, id"
            );
            select(conn, &sql, [now], link_row)
        })
        .await
    }

    async fn revoke_link(&self, id: &str) -> Result<bool> {
        let deletes = [
            "DELETE FROM console_sessions WHERE link_id = ?1",
            "DELETE FROM portal_links WHERE id = ?1",
        ];
        self.remove(id, deletes).await
    }

    async fn events_since(&self, filter: &EventFilter) -> Result<Vec<StoredEvent>> {
        let filter = filter.clone();
        self.call(move |conn| {
            let (after_at, after_id) = filter.after.clone().unzip();
            let (order, past) = super::events_order(filter.newest_first);
            let sql = format!(
                "SELECT id, product_id, payload, received_at FROM events
                 WHERE received_at >= ?1 AND (?2 IS NULL OR product_id = ?2)
                   AND (?3 IS NULL OR (received_at, id) {past} (?3, ?4))
                 ORDER BY received_at {order}, id {order} LIMIT ?5"
            );
            let page = params![
                filter.since,
                filter.product,
                after_at,
                after_id,
                filter.limit.max(1) as i64
            ];
            let mut events = select(conn, &sql, page, |row| {
                Ok(from_columns!(row.get => StoredEvent {
                    id, product, payload, received_at,
                } + {
                    deliveries: Vec::new(),
                }))
            })?;
            let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
            // One pass over the deliveries for the whole batch.
            let sql = format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries
                 WHERE event_id IN (SELECT value FROM json_each(?1))
                 ORDER BY created_at, id"
            );
            let rows = select(conn, &sql, [to_json(&ids)], delivery_row)?;
            for row in rows {
                let row = with_status(row)?;
                if let Some(event) = events.iter_mut().find(|e| e.id == row.event_id) {
                    event.deliveries.push(row);
                }
            }
            Ok(events)
        })
        .await
    }

    async fn enqueue(
        &self,
        event_id: &str,
        deliveries: &[NewDelivery],
        now: Millis,
    ) -> Result<usize> {
        let (event_id, deliveries) = (event_id.to_owned(), deliveries.to_vec());
        self.write(move |tx| {
            let product: String = tx
                .query_row(sql::PRODUCT_OF_EVENT, [&event_id], |row| row.get(0))
                .optional()?
                .ok_or_else(|| no_event(&event_id))?;
            let mut added = 0;
            let insert = INSERT_DELIVERY.replacen("INSERT", "INSERT OR IGNORE", 1);
            let arrival = Arrival {
                event_id: &event_id,
                product: &product,
                at: now,
            };
            for delivery in &deliveries {
                let new = insert_delivery(tx, &insert, &event_id, &product, delivery, now)?;
                if new > 0 {
                    // Shaped as at the intake, arriving now.
                    shaping::shape_new(tx, &arrival, delivery)?;
                }
                added += new;
            }
            queue_in_lanes(tx, &product, &deliveries, now)?;
            Ok(added)
        })
        .await
    }

    async fn check_writable(&self, now: Millis) -> Result<()> {
        self.call(move |conn| {
            conn.execute(sql::MARK_WRITABLE, [now])?;
            Ok(())
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Millis>> {
        self.call(|conn| Ok(conn.query_row("SELECT MIN(due_at) FROM lanes", [], |row| row.get(0))?))
            .await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRow>> {
        let filter = filter.clone();
        self.call(move |conn| {
            let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut add = |clause: &str, value: rusqlite::types::Value| {
                args.push(value);
                sql.push_str(&format!(" AND {clause} ?{}", args.len()));
            };
            if let Some(status) = filter.status {
                add("status =", status.as_str().to_owned().into());
            }
            if let Some(service) = &filter.service {
                add("service =", service.clone().into());
            }
            if let Some(product) = &filter.product {
                add("product_id =", product.clone().into());
            }
            if let Some(since) = filter.updated_since {
                add("updated_at >=", since.into());
            }
            if let Some((updated_at, id)) = filter.after {
                args.push(updated_at.into());
                args.push(id.into());
                let (at, id) = (args.len() - 1, args.len());
                sql.push_str(&format!(" AND (updated_at, id) < (?{at}, ?{id})"));
            }
            sql.push_str(" ORDER BY updated_at DESC, id DESC");
            if filter.limit > 0 {
                sql.push_str(&format!(" LIMIT {}", filter.limit));
            }
            let rows = conn
                .prepare(&sql)?
                .query_map(rusqlite::params_from_iter(args), delivery_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(with_status).collect()
        })
        .await
    }

    async fn shaped_into(&self, id: &str) -> Result<Vec<DeliveryRow>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE replaced_by = ?1
                 ORDER BY created_at, rowid"
            );
            let rows = select(conn, &sql, [id], delivery_row)?;
            rows.into_iter().map(with_status).collect()
        })
        .await
    }

    async fn waiting(&self, id: &str, now: Millis) -> Result<Option<Waiting>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let state = conn
                .query_row(sql::DELIVERY_STATE, [&id], |row| {
                    Ok(from_columns!(row.get => DeliveryState {
                        status, next_at, lease_until, lane, order_key,
                    }))
                })
                .optional()?;
            let Some(state) = state else {
                return Ok(None);
            };
            if !state.is_queued()? {
                return Ok(None);
            }
            let behind = match state.held_by() {
                Some(key) => conn
                    .query_row(
                        "SELECT id FROM deliveries WHERE order_key = ?1 AND next_at IS NOT NULL
                             AND status IN ('pending', 'failed') ORDER BY rowid LIMIT 1",
                        [key],
                        |row| row.get(0),
                    )
                    .optional()?,
                None => None,
            };
            let lane = match &state.lane {
                Some(lane) => conn
                    .query_row(
                        &format!("{LANES_AT} WHERE l.key = $2"),
                        params![now, lane],
                        lane_row,
                    )
                    .optional()?,
                None => None,
            };
            Ok(Some(state.waiting(behind, lane, now)))
        })
        .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<(DeliveryRow, Vec<AttemptRecord>)>> {
        let id = id.to_owned();
        self.call(move |conn| {
            let row = conn
                .query_row(
                    &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"),
                    [&id],
                    delivery_row,
                )
                .optional()?;
            let Some(row) = row else {
                return Ok(None);
            };
            let sql = "SELECT number, at, target, outcome, status, error, duration_ms
                 FROM attempts WHERE delivery_id = ?1 ORDER BY rowid";
            let attempts = select(conn, sql, [&id], |row| {
                Ok(from_columns!(row.get => AttemptRecord {
                    number, at, target, outcome, status, error,
                } + {
                    duration_ms: count_at(row, 6)?,
                }))
            })?;
            Ok(Some((with_status(row)?, attempts)))
        })
        .await
    }

    async fn activity(&self, product: &str, window: ActivityWindow) -> Result<Activity> {
        let ActivityWindow {
            since,
            durations_since,
        } = window;
        let product = product.to_owned();
        self.call(move |conn| {
            let since_minute = params![product, minute_of(since), since];
            let counts = select(conn, sql::ACTIVITY_COUNTS, since_minute, |row| {
                Ok((row.get(0)?, row.get(1)?, count_at(row, 2)?))
            })?;
            let recent = params![
                product,
                minute_of(durations_since),
                durations_since,
                super::ACTIVITY_DURATIONS as i64
            ];
            let durations = select(conn, sql::RECENT_DURATIONS, recent, |row| {
                Ok((row.get(0)?, count_at(row, 1)?))
            })?;
            let by_status = select(conn, sql::STATUS_COUNTS, [&product], |row| {
                Ok((row.get::<_, String>(0)?, count_at(row, 1)?))
            })?;
            let by_status = by_status
                .into_iter()
                .map(|(status, n)| Ok((status_of(&status)?, n)))
                .collect::<Result<Vec<_>>>()?;
            Ok(Activity {
                counts,
                durations,
                by_status,
            })
        })
        .await
    }

    async fn event_payload(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_owned();
        self.call(move |conn| {
            Ok(conn
                .query_row("SELECT payload FROM events WHERE id = ?1", [&id], |row| {
                    row.get(0)
                })
                .optional()?)
        })
        .await
    }

    async fn redeliver(&self, id: &str, now: Millis) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |tx| redeliver_in(tx, &id, now)).await
    }

    async fn stats(&self) -> Result<Stats> {
        self.call(|conn| {
            let count = |sql: &str| conn.query_row(sql, [], |row| count_at(row, 0));
            let events = count("SELECT COUNT(*) FROM events")?;
            let attempts = count("SELECT COUNT(*) FROM attempts")?;
            let sql = "SELECT service, status, COUNT(*) FROM deliveries
                 GROUP BY service, status ORDER BY service, status";
            let rows = select(conn, sql, [], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    count_at(row, 2)?,
                ))
            })?;
            let mut stats = Stats {
                events,
                attempts,
                ..Stats::default()
            };
            for (service, status, count) in rows {
                stats.by_service.push((service, status_of(&status)?, count));
            }
            stats.tally();
            stats.next_due = conn.query_row(
                "SELECT MIN(next_at) FROM deliveries WHERE status IN ('pending', 'failed')",
                [],
                |row| row.get(0),
            )?;
            Ok(stats)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("lookout.db"))
            .await
            .unwrap();
        (dir, store)
    }

    crate::store::suite::store_suite!(open: fresh(), close: |_dir| async {});
    crate::store::upkeep_suite::upkeep_suite!(open: fresh(), close: |_dir| async {});
    crate::store::lanes_suite::lanes_suite!(open: fresh(), close: |_dir| async {});
    crate::store::fallback_suite::fallback_suite!(open: fresh(), close: |_dir| async {});
    crate::store::shaping_suite::shaping_suite!(open: fresh(), close: |_dir| async {});

    /// Claims commit without an fsync; the connection is back to `FULL` afterwards,
    /// whether the claim worked or not, so that every other commit stays durable.
    #[tokio::test]
    async fn only_claims_skip_their_fsync() {
        let (_dir, store) = fresh().await;
        let synchronous = |conn: &Connection| -> i64 {
            conn.pragma_query_value(None, "synchronous", |row| row.get(0))
                .unwrap()
        };
        let during = store
            .call(move |conn| without_fsync(conn, |conn| Ok(synchronous(conn))))
            .await
            .unwrap();
        assert_eq!(during, 1, "NORMAL while claiming");
        let failed = store
            .call(|conn| {
                without_fsync(conn, |_| -> Result<()> { Err(backend("the claim failed")) })
            })
            .await;
        assert!(failed.is_err());
        let after = store.call(move |conn| Ok(synchronous(conn))).await.unwrap();
        assert_eq!(after, 2, "FULL again after a failed claim");
        store
            .claim(Lease::new("w1", 0, Duration::from_secs(30)), 10)
            .await
            .unwrap();
        let after = store.call(move |conn| Ok(synchronous(conn))).await.unwrap();
        assert_eq!(after, 2, "FULL again after a claim");
    }

    #[tokio::test]
    async fn reopening_keeps_everything_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lookout.db");
        {
            let store = SqliteStore::open(&path).await.unwrap();
            crate::store::suite::accept_one(&store, "evt_1", &["msg_1"]).await;
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.stats().await.unwrap().queue_depth, 1);
        let (mode, sync): (String, i64) = store
            .call(|conn| {
                Ok((
                    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                    conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            (mode.as_str(), sync),
            ("wal", 2),
            "WAL with synchronous=FULL"
        );
    }

    /// Attempts stored before their product and minute were (migration 0012) are filled
    /// in when the database is opened by this lookout, and counted.
    #[tokio::test]
    async fn attempts_stored_before_step_12_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lookout.db");
        {
            let conn = Connection::open(&path).unwrap();
            let before = MIGRATIONS.len() - 1;
            for step in &MIGRATIONS[..before] {
                conn.execute_batch(step).unwrap();
            }
            conn.pragma_update(None, "user_version", before as i64)
                .unwrap();
            conn.execute_batch(crate::store::suite::ATTEMPT_BEFORE_MINUTES)
                .unwrap();
        }
        let store = SqliteStore::open(&path).await.unwrap();
        crate::store::suite::attempts_before_minutes_are_counted(&store).await;
    }
}
