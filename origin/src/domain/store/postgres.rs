//! The Postgres store. Elections and ballots come from the main database through its
//! lag-aware replica router. Voters, votes and tallies live on vote shards — each a primary
//! with its own replicas, chosen by a stable hash of the voter id — and votes reach a shard's
//! primary through its group-commit [`Batcher`], committed before the caller hears back. A
//! voter's own reads after voting follow their write's LSN (read-your-writes). Results are
//! the shards' counters summed. Every statement is parameterised and timed into the
//! slow-query log.
//!
//! Elections and ballot options are reference data on every shard, and every unique key
//! holds `voter_id`, so the votes and voters tables could be distributed on it by Citus
//! unchanged (the tallies would become a table of their own there); the origin routes by
//! itself because Citus is not packaged for the machines Surge is tested on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Object;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::batch::{BatchSettings, Batcher};
use super::{ElectionStore, StoreError, StoreFuture, demo_ballot};
use crate::db::DbError;
use crate::db::router::{ReplicaRouter, Session, timed};
use crate::db::shard::ShardMap;
use crate::db::slowlog::SlowLog;
use crate::domain::model::{
    Ballot, BallotOption, Cast, Credential, Election, NewVote, Receipt, Registration, Results,
    Tally,
};

/// How long a voter's reads keep following their last write.
const SESSION_TTL: Duration = Duration::from_secs(300);

const ELECTION_COLUMNS: &str = "id, slug, title, \
    (extract(epoch from opens_at) * 1000)::bigint, (extract(epoch from closes_at) * 1000)::bigint";

/// One vote shard: its primary and replicas, the read floor its replicas must have passed,
/// and its vote queue.
struct VoteShard {
    router: Arc<ReplicaRouter>,
    floor: Session,
    batcher: Batcher,
}

/// Voters registered per statement.
const REGISTER_CHUNK: usize = 1000;

/// The Postgres-backed store.
pub struct PgStore {
    router: Arc<ReplicaRouter>,
    shards: ShardMap<VoteShard>,
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
    /// A store over the main database `router` and the vote `shards` (the main database is
    /// the one shard when none is given), batching votes by `batch`, logging statements
    /// slower than the log's threshold to `slow`.
    pub fn new(
        router: Arc<ReplicaRouter>,
        shards: Vec<Arc<ReplicaRouter>>,
        batch: BatchSettings,
        slow: Arc<SlowLog>,
    ) -> Self {
        let shards = if shards.is_empty() {
            vec![router.clone()]
        } else {
            shards
        };
        let shards = shards
            .into_iter()
            .map(|router| VoteShard {
                batcher: Batcher::spawn(router.clone(), batch, slow.clone()),
                router,
                floor: Session::default(),
            })
            .collect();
        Self {
            router,
            shards: ShardMap::new(shards).unwrap_or_else(|| unreachable!("at least one shard")),
            slow,
            sessions: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(SESSION_TTL)
                .build(),
            floor: Session::default(),
        }
    }

    /// Makes every read skip replicas that have not replayed their primary's current
    /// position (the migrations and seed just applied at start-up), then gives the replicas
    /// up to `wait` to catch up so reads spread from the first request.
    pub async fn set_read_floor(&mut self, wait: Duration) -> Result<(), StoreError> {
        self.floor = read_floor(&self.router, wait).await?;
        for shard in self.shards.all_mut() {
            shard.floor = read_floor(&shard.router, wait).await?;
        }
        Ok(())
    }

    /// Inserts the demo election into the main database and every vote shard that has no
    /// elections yet (elections are reference data every shard holds); returns whether the
    /// main database was seeded.
    pub async fn seed_demo(&self) -> Result<bool, StoreError> {
        let seeded = seed(&self.router).await?;
        for shard in self.shards.all() {
            if !Arc::ptr_eq(&shard.router, &self.router) {
                seed(&shard.router).await?;
            }
        }
        Ok(seeded)
    }

    async fn query(
        &self,
        conn: &Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        Ok(timed(conn, sql, params, &self.slow).await?)
    }

    /// A read through `router` for `session` (see [`ReplicaRouter::read_rows`]).
    async fn read_on(
        &self,
        router: &ReplicaRouter,
        session: &Session,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        Ok(router.read_rows(session, sql, params, &self.slow).await?.0)
    }

    async fn read(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.read_on(&self.router, &self.floor, sql, params).await
    }

    async fn ballot_rows(&self, id: i64) -> Result<Option<Ballot>, StoreError> {
        let sql = format!("SELECT {ELECTION_COLUMNS} FROM elections WHERE id = $1");
        let Some(row) = self.read(&sql, &[&id]).await?.into_iter().next() else {
            return Ok(None);
        };
        let options = self
            .read(
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
        let key = (vote.election_id, vote.voter_id.clone());
        let (cast, session) = self
            .shards
            .for_key(&vote.voter_id)
            .batcher
            .cast(vote)
            .await?;
        if matches!(cast, Cast::Recorded(_)) {
            // Remember the LSN so this voter's own reads see the vote even through a
            // lagging replica.
            self.sessions.insert(key, session);
        }
        Ok(cast)
    }

    /// The summed counters of `id` on one shard, by option.
    async fn shard_tallies(
        &self,
        shard: &VoteShard,
        id: i64,
    ) -> Result<Vec<(i32, i64)>, StoreError> {
        Ok(self
            .read_on(
                &shard.router,
                &shard.floor,
                "SELECT option_id, sum(votes)::bigint FROM tallies WHERE election_id = $1 \
                 GROUP BY option_id",
                &[&id],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn results_of(&self, id: i64) -> Result<Option<Results>, StoreError> {
        let Some(ballot) = self.ballot_rows(id).await? else {
            return Ok(None);
        };
        let per_shard = futures_util::future::try_join_all(
            self.shards.all().iter().map(|s| self.shard_tallies(s, id)),
        )
        .await?;
        let mut counts: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
        for (option, votes) in per_shard.into_iter().flatten() {
            *counts.entry(option).or_default() += votes;
        }
        let tallies: Vec<Tally> = ballot
            .options
            .into_iter()
            .map(|o| Tally {
                votes: counts.get(&o.id).copied().unwrap_or(0),
                option_id: o.id,
                label: o.label,
            })
            .collect();
        Ok(Some(Results {
            election_id: id,
            total: tallies.iter().map(|t| t.votes).sum(),
            tallies,
            counted_at: OffsetDateTime::now_utc(),
        }))
    }

    async fn credential_of(&self, voter_id: String) -> Result<Option<Credential>, StoreError> {
        const SQL: &str = "SELECT code_hash, elections FROM voters WHERE voter_id = $1";
        let shard = self.shards.for_key(&voter_id);
        let mut rows = self
            .read_on(&shard.router, &shard.floor, SQL, &[&voter_id])
            .await?;
        if rows.is_empty() {
            // Registered moments ago and not replayed yet? The primary knows.
            let conn = shard.router.write().await?;
            rows = self.query(&conn, SQL, &[&voter_id]).await?;
        }
        Ok(rows.first().map(|r| Credential {
            code_hash: r.get(0),
            elections: r.get(1),
        }))
    }

    async fn register_all(&self, voters: Vec<Registration>) -> Result<Vec<String>, StoreError> {
        let mut by_shard: Vec<Vec<Registration>> =
            self.shards.all().iter().map(|_| Vec::new()).collect();
        for r in voters {
            by_shard[self.shards.index_of(&r.voter_id)].push(r);
        }
        let mut existing = Vec::new();
        for (shard, voters) in self.shards.all().iter().zip(by_shard) {
            for chunk in voters.chunks(REGISTER_CHUNK) {
                let conn = shard.router.write().await?;
                let ids: Vec<&str> = chunk.iter().map(|r| r.voter_id.as_str()).collect();
                let elections: Vec<String> = chunk
                    .iter()
                    .map(|r| {
                        r.elections
                            .iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect();
                let hashes: Vec<&[u8]> = chunk.iter().map(|r| &r.code_hash[..]).collect();
                let inserted: std::collections::HashSet<String> = self
                    .query(
                        &conn,
                        "INSERT INTO voters (voter_id, elections, code_hash) \
                         SELECT v, string_to_array(e, ',')::bigint[], h \
                         FROM unnest($1::text[], $2::text[], $3::bytea[]) AS i (v, e, h) \
                         ON CONFLICT (voter_id) DO NOTHING RETURNING voter_id",
                        &[&ids, &elections, &hashes],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                existing.extend(
                    ids.iter()
                        .filter(|id| !inserted.contains(**id))
                        .map(|id| (*id).to_string()),
                );
            }
        }
        Ok(existing)
    }
}

/// The position every read must have passed: the primary's current one, once its replicas
/// have had up to `wait` to reach it.
async fn read_floor(router: &ReplicaRouter, wait: Duration) -> Result<Session, StoreError> {
    let mut floor = Session::default();
    {
        let conn = router.write().await?;
        router.wrote(&conn, &mut floor).await?;
    }
    let start = Instant::now();
    loop {
        router.refresh().await;
        if router.caught_up(&floor) || start.elapsed() >= wait {
            return Ok(floor);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Inserts the demo election into `router`'s primary unless it has elections; whether it did.
async fn seed(router: &ReplicaRouter) -> Result<bool, StoreError> {
    let mut conn = router.write().await?;
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
        Box::pin(self.results_of(id))
    }

    fn cast(&self, vote: NewVote) -> StoreFuture<'_, Cast> {
        Box::pin(self.cast_vote(vote))
    }

    fn vote_of(&self, election_id: i64, voter_id: String) -> StoreFuture<'_, Option<Receipt>> {
        Box::pin(async move {
            let shard = self.shards.for_key(&voter_id);
            let session = self
                .sessions
                .get(&(election_id, voter_id.clone()))
                .filter(|s| s.last_write >= shard.floor.last_write)
                .unwrap_or(shard.floor);
            let rows = self
                .read_on(
                    &shard.router,
                    &session,
                    "SELECT option_id, receipt, (extract(epoch from cast_at) * 1000)::bigint \
                     FROM votes WHERE election_id = $1 AND voter_id = $2",
                    &[&election_id, &voter_id],
                )
                .await?;
            Ok(rows.first().map(|r| receipt(election_id, r)))
        })
    }

    fn credential(&self, voter_id: String) -> StoreFuture<'_, Option<Credential>> {
        Box::pin(self.credential_of(voter_id))
    }

    fn register(&self, voters: Vec<Registration>) -> StoreFuture<'_, Vec<String>> {
        Box::pin(self.register_all(voters))
    }
}
