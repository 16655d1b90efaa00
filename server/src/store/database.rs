//! Which store a `--database` argument names, opened (and, for `serve` on SQLite, held
//! by one process), and shown without its password.

use std::sync::Arc;

use super::{Result, Store, StoreError, postgres, sqlite};

/// Opens the store a `--database` argument names: a `postgres://` (or `postgresql://`)
/// URL, or else a SQLite file path (created if missing).
pub async fn open(database: &str) -> Result<Arc<dyn Store>> {
    if is_postgres(database) {
        return Ok(Arc::new(postgres::PostgresStore::open(database).await?));
    }
    Ok(Arc::new(
        sqlite::SqliteStore::open(sqlite_path(database)?).await?,
    ))
}

/// Whether `database` names a PostgreSQL database, shared by several processes.
pub fn is_postgres(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

fn sqlite_path(database: &str) -> Result<&str> {
    if database.contains("://") && !database.starts_with("sqlite://") {
        return Err(StoreError::Backend(format!(
            "unsupported database `{}://…` (give a SQLite file path or a postgres:// URL)",
            database.split("://").next().unwrap_or_default()
        )));
    }
    Ok(database.strip_prefix("sqlite://").unwrap_or(database))
}

/// The `--database` argument as it may be printed: a URL's password is replaced.
pub fn shown_database(database: &str) -> String {
    match url::Url::parse(database) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Brackets would be percent-encoded in a URL: a plain word.
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => database.to_owned(),
    }
}

/// Keeps a SQLite store to one `serve` process; released when dropped (or when the
/// process dies: it is an OS file lock). Holds nothing for PostgreSQL, which any number
/// of processes share.
#[derive(Debug)]
pub struct ServeLock {
    _file: Option<std::fs::File>,
}

/// Opens the store for `serve`. A SQLite file is locked to this process (a second
/// `serve` on the same file is refused), and leases left by a process that was killed
/// are handed back at once: no other process can hold one. On PostgreSQL other workers
/// may hold leases right now: a killed process's leases run out by themselves.
pub async fn open_for_serve(database: &str) -> Result<(Arc<dyn Store>, ServeLock)> {
    if is_postgres(database) {
        return Ok((open(database).await?, ServeLock { _file: None }));
    }
    let path = sqlite_path(database)?;
    let lock_path = format!("{path}.serve-lock");
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true).truncate(false);
    // Readable by us only (another user who can open it could flock it and keep
    // `serve` from starting), and never through a symlink planted in its place.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let file = options
        .open(&lock_path)
        .map_err(|e| StoreError::Backend(format!("cannot open {lock_path}: {e}")))?;
    sqlite::make_private(std::path::Path::new(&lock_path))?;
    file.try_lock()
        .map_err(|_| StoreError::Backend(format!("another `lookout serve` is using {path}")))?;
    let store = sqlite::SqliteStore::open(path).await?;
    store.release_all().await?;
    Ok((Arc::new(store), ServeLock { _file: Some(file) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_are_told_apart_and_passwords_never_shown() {
        assert!(is_postgres("postgres://lookout@db.internal/lookout"));
        assert!(is_postgres("postgresql://db.internal/lookout"));
        assert!(!is_postgres("lookout.db"));
        assert!(!is_postgres("sqlite:///var/lib/lookout.db"));
        assert_eq!(sqlite_path("sqlite://x.db").unwrap(), "x.db");
        assert!(sqlite_path("mysql://db/x").is_err());
        let shown = shown_database("postgres://lookout:s3cr3t-pw@db.internal:5433/lookout");
        assert_eq!(
            shown,
            "postgres://lookout:redacted@db.internal:5433/lookout"
        );
        assert_eq!(shown_database("lookout.db"), "lookout.db");
        assert_eq!(
            shown_database("postgres://lookout@db/x"),
            "postgres://lookout@db/x"
        );
    }
}
