//! `lookout prune` and `lookout forget` on a real SQLite file: they remove exactly what
//! they say, print the counts, and the file shrinks.
//!
//! The size of the run is `LOOKOUT_PRUNE_EVENTS` (default 5,000 events); with 100000 it
//! gives the figure in docs/SERVING.md (it prints how long the prune took).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

const DAY_MS: i64 = 86_400_000;

fn lookout(db: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .arg("--database")
        .arg(db)
        .output()
        .expect("run lookout");
    assert!(
        output.status.success(),
        "lookout {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The database file's size, with the write-ahead log folded in first.
fn size(db: &Path) -> u64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    std::fs::metadata(db).unwrap().len()
}

/// What each event of the run is: its product, age in days, delivery status, author.
fn kind(n: usize) -> (&'static str, i64, &'static str, u64) {
    match n % 10 {
        0 => ("p1", 40, "dead", 7),
        1 => ("p1", 40, "pending", 7),
        2 => ("p1", 1, "delivered", 7),
        3 => ("p2", 40, "delivered", 1111),
        _ => ("p1", 40, "delivered", 7),
    }
}

/// Fills the store the way `serve` would have (one delivery and one attempt per event),
/// in one transaction so that setting up a large run is quick.
fn fill(db: &Path, events: usize) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let now = now_ms();
    let filler = "x".repeat(1_500);
    for n in 0..events {
        let (product, days, status, author) = kind(n);
        let at = now - days * DAY_MS;
        let payload = serde_json::json!({
            "model": "Item", "action": "created", "product": {"id": 1, "name": "P"},
            "attributes": {"created_by": {"id": author}, "description": filler},
        });
        let (event, delivery) = (format!("evt_{n}"), format!("msg_{n}"));
        conn.execute(
            "INSERT INTO events (id, product_id, payload, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![event, product, payload.to_string(), at],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO deliveries (id, event_id, product_id, instance, service, status,
                 attempts, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'hook', 'webhook', ?4, 1, ?5, ?5)",
            params![delivery, event, product, status, at],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO attempts (delivery_id, number, at, duration_ms, outcome)
             VALUES (?1, 1, ?2, 5, ?3)",
            params![delivery, at, status],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

fn count(db: &Path, sql: &str) -> usize {
    let conn = Connection::open(db).unwrap();
    conn.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap() as usize
}

#[test]
fn prune_and_forget_remove_what_they_say_and_the_file_shrinks() {
    let events: usize = std::env::var("LOOKOUT_PRUNE_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000)
        .max(10)
        / 10
        * 10;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    lookout(&db, &["stats"]); // creates the schema
    fill(&db, events);
    let tenth = events / 10;
    let before = size(&db);

    // Old and finished: 7 of every 10 (p1's and p2's delivered ones 40 days old).
    let started = Instant::now();
    let pruned = lookout(&db, &["prune", "--older-than", "30d"]);
    let took = started.elapsed();
    let n = 7 * tenth;
    assert_eq!(
        pruned,
        format!("pruned {n} events, {n} deliveries, {n} attempts")
    );
    let after = size(&db);
    eprintln!(
        "pruned {n} of {events} events in {:.2?}; file {before} -> {after} bytes",
        took
    );
    assert!(
        after < before / 2,
        "the file shrinks: {before} -> {after} bytes"
    );
    let left = count(&db, "SELECT COUNT(*) FROM events");
    assert_eq!(left, 3 * tenth, "the dead, pending and recent ones stay");
    assert!(took < Duration::from_secs(600));

    // Dead ones go with --dead-older-than.
    let dead = lookout(
        &db,
        &["prune", "--older-than", "30d", "--dead-older-than", "30d"],
    );
    assert_eq!(
        dead,
        format!("pruned {tenth} events, {tenth} deliveries, {tenth} attempts")
    );

    // Nobody's payloads are left of author 1111 (all were p2's and pruned already) …
    let none = lookout(&db, &["forget", "--where", "attributes.created_by.id=1111"]);
    assert_eq!(none, "erased 0 events, 0 deliveries, 0 attempts");
    // … and a product's go, queued ones included.
    let p1 = lookout(&db, &["forget", "--product", "p1"]);
    let n = 2 * tenth;
    assert_eq!(
        p1,
        format!("erased {n} events, {n} deliveries, {n} attempts")
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events"), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM attempts"), 0);
}

#[test]
fn forget_by_a_field_erases_only_that_persons_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    lookout(&db, &["stats"]);
    fill(&db, 20);
    let erased = lookout(&db, &["forget", "--where", "attributes.created_by.id=1111"]);
    assert_eq!(erased, "erased 2 events, 2 deliveries, 2 attempts");
    let left = count(
        &db,
        "SELECT COUNT(*) FROM events WHERE json_extract(payload, '$.attributes.created_by.id') = 1111",
    );
    assert_eq!(left, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events"), 18);

    let bad = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args([
            "forget",
            "--where",
            "attributes.created_by.id",
            "--database",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--where `attributes.created_by.id`: expected PATH=VALUE"),
        "{err}"
    );
}
