//! A throwaway PostgreSQL schema per test.

use tokio_postgres::NoTls;

/// For tests: a fresh schema in the database `LOOKOUT_TEST_DATABASE_URL` names (set by
/// `scripts/with-postgres.sh`), so that tests run side by side without seeing each
/// other's rows.
pub struct TestSchema {
    /// The database URL with this schema as its `search_path`.
    pub url: String,
    pub name: String,
    base: String,
}

impl TestSchema {
    /// The variable the PostgreSQL tests read.
    pub const VAR: &str = "LOOKOUT_TEST_DATABASE_URL";

    /// Creates the schema. Panics when the variable is unset: a PostgreSQL test must not
    /// pass without PostgreSQL.
    pub async fn create() -> TestSchema {
        let base = std::env::var(Self::VAR).unwrap_or_default();
        assert!(
            !base.is_empty(),
            "{} is not set: the PostgreSQL tests need a database. Run them under \
             scripts/with-postgres.sh (e.g. `scripts/with-postgres.sh cargo test --workspace`) \
             or with `make test`, which start a throwaway PostgreSQL cluster.",
            Self::VAR
        );
        let name = format!("lookout_test_{}", uuid::Uuid::now_v7().simple());
        Self::admin(&base, &format!("CREATE SCHEMA {name}")).await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
        TestSchema { url, name, base }
    }

    /// Drops the schema and everything in it (left in place when a test fails, to look at).
    pub async fn drop_schema(self) {
        Self::admin(&self.base, &format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }

    /// A connection to the schema, for tests that look at rows the trait does not show.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", Self::VAR));
        tokio::spawn(connection);
        client
    }

    async fn admin(base: &str, sql: &str) {
        let (client, connection) = tokio_postgres::connect(base, NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", Self::VAR));
        let driver = tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap_or_else(|e| {
            panic!(
                "{sql}: {}",
                e.as_db_error()
                    .map_or(e.to_string(), |d| d.message().to_owned())
            )
        });
        drop(client);
        let _ = driver.await;
    }
}
