//! Embedded, versioned migrations, applied at start-up in order, each in its own transaction,
//! under an advisory lock so concurrent starts apply each one once.

use super::DbError;
use super::pool::DbPool;

/// A migration: version, name, SQL.
pub type Migration = (i64, &'static str, &'static str);

/// Every migration, in version order.
pub const MIGRATIONS: &[Migration] = &[
    (
        1,
        "elections",
        include_str!("../../migrations/0001_elections.sql"),
    ),
    (
        2,
        "scaling",
        include_str!("../../migrations/0002_scaling.sql"),
    ),
    (
        3,
        "voters_tallies",
        include_str!("../../migrations/0003_voters_tallies.sql"),
    ),
    (4, "sla", include_str!("../../migrations/0004_sla.sql")),
    (
        5,
        "scaling_rates",
        include_str!("../../migrations/0005_scaling_rates.sql"),
    ),
];

/// Key of the advisory lock held while migrating.
const LOCK_KEY: i64 = 0x5355_5247_454d_4947;

/// Applies the migrations `pool`'s database lacks; returns the versions applied now.
pub async fn run(pool: &DbPool, migrations: &[Migration]) -> Result<Vec<i64>, DbError> {
    let mut conn = pool.get().await?;
    conn.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = async {
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS surge_migrations (\
             version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let done: Vec<i64> = conn
            .query("SELECT version FROM surge_migrations", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut applied = Vec::new();
        for (version, name, sql) in migrations {
            if done.contains(version) {
                continue;
            }
            let tx = conn.transaction().await?;
            tx.batch_execute(sql)
                .await
                .map_err(|e| DbError::Query(format!("migration {version} ({name}): {}", DbError::from(e))))?;
            tx.execute("INSERT INTO surge_migrations (version, name) VALUES ($1, $2)", &[version, name])
                .await?;
            tx.commit().await?;
            applied.push(*version);
        }
        Ok::<_, DbError>(applied)
    }
    .await;
    conn.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    result
}
