//! The Postgres store: reads through the lag-aware replica router, votes on the primary
//! (committed before the caller hears back), a voter's own reads after voting follow their
//! write's LSN (read-your-writes). Every statement is parameterised and timed into the
//! slow-query log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{ElectionStore, StoreError, StoreFuture, demo_ballot};
use crate::app::model::{Ballot, BallotOption, Cast, Election, NewVote, Receipt, Results, Tally};
use crate::db::DbError;
use crate::db::router::{ReplicaRouter, Session};
use crate::db::slowlog::SlowLog;

/// How long a voter's reads keep following their last write.
const SESSION_TTL: Duration = Duration::from_secs(300);

const ELECTION_COLUMNS: &str = "id, slug, title, \
    (extract(epoch from opens_at) * 1000)::bigint, (extract(epoch from closes_at) * 1000)::bigint";

/// The Postgres-backed store.
pub struct PgStore {
    router: Arc<ReplicaRouter>,
    slow: Arc<SlowLog>,
    sessions: moka::sync::Cache<(i64, String), Session>,
    floor: Session,
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(m) => StoreError::Unavailable(m),
            other => StoreError::Failed(other.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}

fn at_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn election(row: &Row) -> Election {
    Election {
        id: row.get(0),
        slug: row.get(1),
        title: row.get(2),
        opens_at: at_ms(row.get(3)),
        closes_at: at_ms(row.get(4)),
    }
}

fn receipt(election_id: i64, row: &Row) -> Receipt {
    Receipt {
        election_id,
        option_id: row.get(0),
        receipt: row.get(1),
        cast_at: at_ms(row.get(2)),
    }
}

impl PgStore {
    /// A store over `router`, logging statements slower than the log's threshold to `slow`.
    pub fn new(router: Arc<ReplicaRouter>, slow: Arc<SlowLog>) -> Self {
        Self {
            router,
            slow,
            sessions: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(SESSION_TTL)
                .build(),
            floor: Session::default(),
        }
    }

    /// Makes every read skip replicas that have not replayed the primary's current position
    /// (the migrations and seed just applied at start-up), then gives the replicas up to
    /// `wait` to catch up so reads spread from the first request.
    pub async fn set_read_floor(&mut self, wait: Duration) -> Result<(), StoreError> {
        let mut floor = Session::default();
        {
            let conn = self.router.write().await?;
            self.router.wrote(&conn, &mut floor).await?;
        }
        self.floor = floor;
        let start = Instant::now();
        loop {
            self.router.refresh().await;
            if self.router.caught_up(&floor) || start.elapsed() >= wait {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Inserts the demo election unless the database already has elections; returns whether
    /// it did.
    pub async fn seed_demo(&self) -> Result<bool, StoreError> {
        let mut conn = self.router.write().await?;
        let tx = conn.transaction().await?;
        let count: i64 = tx
            .query_one("SELECT count(*) FROM elections", &[])
            .await?
            .get(0);
        if count > 0 {
            return Ok(false);
        }
        let ballot = demo_ballot(OffsetDateTime::now_utc());
        let e = &ballot.election;
        let opens = e.opens_at.unix_timestamp() as f64;
        let closes = e.closes_at.unix_timestamp() as f64;
        tx.execute(
            "INSERT INTO elections (id, slug, title, opens_at, closes_at) \
             VALUES ($1, $2, $3, to_timestamp($4), to_timestamp($5))",
            &[&e.id, &e.slug, &e.title, &opens, &closes],
        )
        .await?;
        for o in &ballot.options {
            tx.execute(
                "INSERT INTO ballot_options (election_id, option_id, label) VALUES ($1, $2, $3)",
                &[&e.id, &o.id, &o.label],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn query(
        &self,
        conn: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let start = Instant::now();
        let rows = conn.query(sql, params).await;
        self.slow.record(sql, start.elapsed());
        Ok(rows?)
    }

    async fn read(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let (conn, _) = self.router.read(&self.floor).await?;
        self.query(&conn, sql, params).await
    }

    async fn ballot_rows(&self, id: i64) -> Result<Option<Ballot>, StoreError> {
        let (conn, _) = self.router.read(&self.floor).await?;
        let sql = format!("SELECT {ELECTION_COLUMNS} FROM elections WHERE id = $1");
        let Some(row) = self.query(&conn, &sql, &[&id]).await?.into_iter().next() else {
            return Ok(None);
        };
        let options = self
            .query(
                &conn,
                "SELECT option_id, label FROM ballot_options WHERE election_id = $1 ORDER BY option_id",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| BallotOption {
                id: r.get(0),
                label: r.get(1),
            })
            .collect();
        Ok(Some(Ballot {
            election: election(&row),
            options,
        }))
    }

    async fn cast_vote(&self, vote: NewVote) -> Result<Cast, StoreError> {
        let conn = self.router.write().await?;
        let inserted = self
            .query(
                &conn,
                "INSERT INTO votes (election_id, voter_id, option_id, receipt) \
                 SELECT $1, $2, $3, $4 WHERE EXISTS \
                   (SELECT 1 FROM ballot_options WHERE election_id = $1 AND option_id = $3) \
                 ON CONFLICT (election_id, voter_id) DO NOTHING \
                 RETURNING option_id, receipt, (extract(epoch from cast_at) * 1000)::bigint",
                &[
                    &vote.election_id,
                    &vote.voter_id,
                    &vote.option_id,
                    &vote.receipt,
                ],
            )
            .await?;
        let key = (vote.election_id, vote.voter_id.clone());
        if let Some(row) = inserted.first() {
            // Autocommit: the row is committed here. Remember the LSN so this voter's own
            // reads see it even through a lagging replica.
            let mut session = self.sessions.get(&key).unwrap_or_default();
            if self.router.wrote(&conn, &mut session).await.is_ok() {
                self.sessions.insert(key, session);
            }
            return Ok(Cast::Recorded(receipt(vote.election_id, row)));
        }
        let existing = self
            .query(
                &conn,
                "SELECT option_id, receipt, (extract(epoch from cast_at) * 1000)::bigint \
                 FROM votes WHERE election_id = $1 AND voter_id = $2",
                &[&vote.election_id, &vote.voter_id],
            )
            .await?;
        Ok(match existing.first() {
            None => Cast::UnknownOption,
            Some(row) => {
                let r = receipt(vote.election_id, row);
                if r.option_id == vote.option_id {
                    Cast::AlreadyRecorded(r)
                } else {
                    Cast::Conflict(r)
                }
            }
        })
    }
}

impl ElectionStore for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn elections(&self) -> StoreFuture<'_, Vec<Election>> {
        Box::pin(async move {
            let sql = format!("SELECT {ELECTION_COLUMNS} FROM elections ORDER BY id");
            Ok(self.read(&sql, &[]).await?.iter().map(election).collect())
        })
    }

    fn election(&self, id: i64) -> StoreFuture<'_, Option<Election>> {
        Box::pin(async move {
            let sql = format!("SELECT {ELECTION_COLUMNS} FROM elections WHERE id = $1");
            Ok(self.read(&sql, &[&id]).await?.first().map(election))
        })
    }

    fn ballot(&self, id: i64) -> StoreFuture<'_, Option<Ballot>> {
        Box::pin(self.ballot_rows(id))
    }

    fn results(&self, id: i64) -> StoreFuture<'_, Option<Results>> {
        Box::pin(async move {
            let (conn, _) = self.router.read(&self.floor).await?;
            let exists = self
                .query(&conn, "SELECT 1 FROM elections WHERE id = $1", &[&id])
                .await?;
            if exists.is_empty() {
                return Ok(None);
            }
            let tallies: Vec<Tally> = self
                .query(
                    &conn,
                    "SELECT o.option_id, o.label, count(v.voter_id) \
                     FROM ballot_options o \
                     LEFT JOIN votes v ON v.election_id = o.election_id AND v.option_id = o.option_id \
                     WHERE o.election_id = $1 GROUP BY o.option_id, o.label ORDER BY o.option_id",
                    &[&id],
                )
                .await?
                .iter()
                .map(|r| Tally {
                    option_id: r.get(0),
                    label: r.get(1),
                    votes: r.get(2),
                })
                .collect();
            Ok(Some(Results {
                election_id: id,
                total: tallies.iter().map(|t| t.votes).sum(),
                tallies,
                counted_at: OffsetDateTime::now_utc(),
            }))
        })
    }

    fn cast(&self, vote: NewVote) -> StoreFuture<'_, Cast> {
        Box::pin(self.cast_vote(vote))
    }

    fn vote_of(&self, election_id: i64, voter_id: String) -> StoreFuture<'_, Option<Receipt>> {
        Box::pin(async move {
            let session = self
                .sessions
                .get(&(election_id, voter_id.clone()))
                .filter(|s| s.last_write >= self.floor.last_write)
                .unwrap_or(self.floor);
            let (conn, _) = self.router.read(&session).await?;
            let rows = self
                .query(
                    &conn,
                    "SELECT option_id, receipt, (extract(epoch from cast_at) * 1000)::bigint \
                     FROM votes WHERE election_id = $1 AND voter_id = $2",
                    &[&election_id, &voter_id],
                )
                .await?;
            Ok(rows.first().map(|r| receipt(election_id, r)))
        })
    }
}
