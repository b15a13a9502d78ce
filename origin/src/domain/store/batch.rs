//! Group commit for votes: the votes bound for one shard's primary queue here and go in
//! batches (at most `max_votes`, gathered for at most `max_wait` after the first), each batch
//! one statement that inserts the votes and adds them to the tally counters, so both commit
//! together or not at all. Every caller hears back only after its batch has committed.
//!
//! The statement itself filters what must not be stored — options not on the ballot, voters
//! not registered for the election, a second vote by the same voter — so one bad vote never
//! fails its batch; whatever else makes a batch fail is retried vote by vote. Each batch in
//! flight adds to its own counter slot, so concurrent batches never wait on one counter row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;

use super::StoreError;
use crate::db::router::{ReplicaRouter, Session};
use crate::db::slowlog::SlowLog;
use crate::domain::model::{Cast, NewVote, Receipt};

/// Counter slots per election option; batches in flight spread over them.
pub const TALLY_SLOTS: i32 = 64;

/// How votes are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Most votes in one batch (`SURGE_VOTE_BATCH_MAX`, default 500; 1 turns batching off).
    pub max_votes: usize,
    /// Longest a vote waits for others to join its batch (`SURGE_VOTE_BATCH_WAIT`,
    /// default 2ms).
    pub max_wait: Duration,
    /// Batches committing at once per shard (`SURGE_VOTE_BATCHES_IN_FLIGHT`, default 4).
    pub in_flight: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_votes: 500,
            max_wait: Duration::from_millis(2),
            in_flight: 4,
        }
    }
}

/// What a committed vote reports back: the outcome and the write position its voter's own
/// reads must wait for.
pub type Committed = (Cast, Session);

struct Pending {
    vote: NewVote,
    reply: oneshot::Sender<Result<Committed, StoreError>>,
}

/// One shard's vote queue; dropping it stops the batching task once the queue is empty.
pub struct Batcher {
    queue: mpsc::Sender<Pending>,
}

const INSERT_BATCH: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[])
        AS i (election_id, voter_id, option_id, receipt)
), accepted AS (
    INSERT INTO votes (election_id, voter_id, option_id, receipt)
    SELECT i.election_id, i.voter_id, i.option_id, i.receipt FROM input i
    WHERE EXISTS (SELECT 1 FROM ballot_options o
                  WHERE o.election_id = i.election_id AND o.option_id = i.option_id)
      AND EXISTS (SELECT 1 FROM voters v
                  WHERE v.voter_id = i.voter_id AND i.election_id = ANY (v.elections))
    ON CONFLICT (election_id, voter_id) DO NOTHING
    RETURNING election_id, voter_id, option_id, receipt, cast_at
), counted AS (
    INSERT INTO tallies AS t (election_id, option_id, slot, votes)
    SELECT election_id, option_id, $5, count(*) FROM accepted GROUP BY election_id, option_id
    ON CONFLICT (election_id, option_id, slot) DO UPDATE SET votes = t.votes + EXCLUDED.votes
)
SELECT election_id, voter_id, option_id, receipt, (extract(epoch from cast_at) * 1000)::bigint
FROM accepted";

const EXISTING: &str = "\
SELECT v.election_id, v.voter_id, v.option_id, v.receipt,
       (extract(epoch from v.cast_at) * 1000)::bigint
FROM votes v
JOIN unnest($1::bigint[], $2::text[]) AS i (election_id, voter_id)
  ON v.election_id = i.election_id AND v.voter_id = i.voter_id";

const ELIGIBLE: &str = "\
SELECT i.election_id, i.voter_id FROM unnest($1::bigint[], $2::text[]) AS i (election_id, voter_id)
JOIN voters v ON v.voter_id = i.voter_id AND i.election_id = ANY (v.elections)";

fn at_ms(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

type VoteKey = (i64, String);

fn stored(rows: &[Row]) -> HashMap<VoteKey, Receipt> {
    rows.iter()
        .map(|r| {
            let election_id: i64 = r.get(0);
            (
                (election_id, r.get::<_, String>(1)),
                Receipt {
                    election_id,
                    option_id: r.get(2),
                    receipt: r.get(3),
                    cast_at: at_ms(r.get(4)),
                },
            )
        })
        .collect()
}

impl Batcher {
    /// Starts the batching task for the shard whose primary `router` writes to.
    pub fn spawn(router: Arc<ReplicaRouter>, settings: BatchSettings, slow: Arc<SlowLog>) -> Self {
        let settings = BatchSettings {
            max_votes: settings.max_votes.max(1),
            in_flight: settings.in_flight.max(1),
            ..settings
        };
        let (queue, rx) = mpsc::channel(settings.max_votes * settings.in_flight * 4);
        tokio::spawn(run(rx, router, settings, slow));
        Self { queue }
    }

    /// Queues `vote` and waits until its batch has committed (or failed).
    #[tracing::instrument(name = "vote.group_commit", skip_all)]
    pub async fn cast(&self, vote: NewVote) -> Result<Committed, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { vote, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the vote queue has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the vote batch was abandoned".into()))?
    }
}

async fn run(
    mut rx: mpsc::Receiver<Pending>,
    router: Arc<ReplicaRouter>,
    settings: BatchSettings,
    slow: Arc<SlowLog>,
) {
    // Slots of this process start at a random offset so processes rarely share one.
    let base = i32::from(fastrand::u8(..)) % TALLY_SLOTS;
    let (free, mut slots) = mpsc::channel::<i32>(settings.in_flight);
    for i in 0..settings.in_flight {
        let slot = (base + i32::try_from(i).unwrap_or(0)) % TALLY_SLOTS;
        let _ = free.try_send(slot);
    }
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + settings.max_wait;
        let Some(slot) = slots.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < settings.max_votes {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                Ok(None) | Err(_) => break,
            }
        }
        let (router, slow, free) = (router.clone(), slow.clone(), free.clone());
        tokio::spawn(async move {
            commit(&router, &slow, batch, slot).await;
            let _ = free.send(slot).await;
        });
    }
}

/// Commits one batch and answers every vote in it.
async fn commit(router: &ReplicaRouter, slow: &SlowLog, batch: Vec<Pending>, slot: i32) {
    let votes: Vec<&NewVote> = batch.iter().map(|p| &p.vote).collect();
    match insert(router, slow, &votes, slot).await {
        Ok(outcomes) => {
            for (pending, outcome) in batch.into_iter().zip(outcomes) {
                let _ = pending.reply.send(Ok(outcome));
            }
        }
        Err(StoreError::Failed(why)) if batch.len() > 1 => {
            tracing::warn!(
                votes = batch.len(),
                "vote batch failed, retrying one by one: {why}"
            );
            for pending in batch {
                let outcome = insert(router, slow, &[&pending.vote], slot)
                    .await
                    .map(|mut o| o.remove(0));
                let _ = pending.reply.send(outcome);
            }
        }
        Err(e) => {
            for pending in batch {
                let _ = pending.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Inserts `votes` in one statement; the outcome of each, in order.
#[tracing::instrument(name = "db.vote_batch", skip_all, fields(db.system.name = "postgresql", votes = votes.len()))]
async fn insert(
    router: &ReplicaRouter,
    slow: &SlowLog,
    votes: &[&NewVote],
    slot: i32,
) -> Result<Vec<Committed>, StoreError> {
    let conn = router.write().await?;
    let elections: Vec<i64> = votes.iter().map(|v| v.election_id).collect();
    let voters: Vec<&str> = votes.iter().map(|v| v.voter_id.as_str()).collect();
    let options: Vec<i32> = votes.iter().map(|v| v.option_id).collect();
    let receipts: Vec<&str> = votes.iter().map(|v| v.receipt.as_str()).collect();
    let start = Instant::now();
    let accepted = conn
        .query(
            INSERT_BATCH,
            &[&elections, &voters, &options, &receipts, &slot],
        )
        .await;
    slow.record(INSERT_BATCH, start.elapsed());
    let accepted = stored(&accepted?);
    let mut session = Session::default();
    router.wrote(&conn, &mut session).await?;
    let refused: Vec<usize> = (0..votes.len())
        .filter(|&i| {
            let v = votes[i];
            accepted
                .get(&(v.election_id, v.voter_id.clone()))
                .is_none_or(|r| r.receipt != v.receipt)
        })
        .collect();
    let (existing, eligible) = if refused.is_empty() {
        (HashMap::new(), Vec::new())
    } else {
        let e: Vec<i64> = refused.iter().map(|&i| elections[i]).collect();
        let v: Vec<&str> = refused.iter().map(|&i| voters[i]).collect();
        let existing = stored(&conn.query(EXISTING, &[&e, &v]).await?);
        let eligible: Vec<VoteKey> = conn
            .query(ELIGIBLE, &[&e, &v])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        (existing, eligible)
    };
    Ok(votes
        .iter()
        .map(|v| {
            let key = (v.election_id, v.voter_id.clone());
            let cast = match (accepted.get(&key), existing.get(&key)) {
                (Some(r), _) if r.receipt == v.receipt => Cast::Recorded(r.clone()),
                (_, Some(r)) if r.option_id == v.option_id => Cast::AlreadyRecorded(r.clone()),
                (_, Some(_)) => Cast::Conflict,
                (Some(_), None) => Cast::Conflict,
                (None, None) if eligible.contains(&key) => Cast::UnknownOption,
                (None, None) => Cast::NotEligible,
            };
            (cast, session)
        })
        .collect())
}
