//! Where the workload's data lives, behind one narrow trait: Postgres (primary for votes,
//! lag-aware replicas for reads) in production, an in-process store seeded with a demo
//! election when no database is configured.

pub mod batch;
pub mod memory;
pub mod postgres;

use super::model::{Ballot, Cast, Credential, Election, NewVote, Receipt, Registration, Results};

pub use crate::db::{StoreError, StoreFuture};

/// The workload's data operations.
pub trait ElectionStore: Send + Sync + 'static {
    /// `"postgres"` or `"memory"`.
    fn kind(&self) -> &'static str;
    /// Every election, by id.
    fn elections(&self) -> StoreFuture<'_, Vec<Election>>;
    /// One election.
    fn election(&self, id: i64) -> StoreFuture<'_, Option<Election>>;
    /// An election with its choices.
    fn ballot(&self, id: i64) -> StoreFuture<'_, Option<Ballot>>;
    /// The running count.
    fn results(&self, id: i64) -> StoreFuture<'_, Option<Results>>;
    /// Records a vote, durably, before returning `Recorded`; idempotent per voter and
    /// election; only for voters registered for the election.
    fn cast(&self, vote: NewVote) -> StoreFuture<'_, Cast>;
    /// The voter's recorded vote, reading their own writes.
    fn vote_of(&self, election_id: i64, voter_id: String) -> StoreFuture<'_, Option<Receipt>>;
    /// A registered voter's code hash and elections.
    fn credential(&self, voter_id: String) -> StoreFuture<'_, Option<Credential>>;
    /// Registers voters; those already registered are left as they are and their ids
    /// returned.
    fn register(&self, voters: Vec<Registration>) -> StoreFuture<'_, Vec<String>>;
}

/// The demo election both stores can be seeded with: id 1, open from a day ago for a year.
pub fn demo_ballot(now: time::OffsetDateTime) -> Ballot {
    use super::model::BallotOption;
    let now = now
        .replace_nanosecond(0)
        .and_then(|t| t.replace_second(0))
        .unwrap_or(now);
    Ballot {
        election: Election {
            id: 1,
            slug: "general-2026".into(),
            title: "General Election 2026".into(),
            opens_at: now - time::Duration::days(1),
            closes_at: now + time::Duration::days(365),
        },
        options: [
            "Proposal A: extend library hours",
            "Proposal B: new cycle lanes",
            "Proposal C: neither",
        ]
        .iter()
        .enumerate()
        .map(|(i, label)| BallotOption {
            id: i32::try_from(i + 1).unwrap_or(i32::MAX),
            label: (*label).to_string(),
        })
        .collect(),
    }
}

/// Id of the embedded store's long ballot.
pub const LONG_BALLOT_ID: i64 = 20;
/// Candidates on it: enough for its page to be about 16 KiB, the large page of the benches.
const LONG_BALLOT_CANDIDATES: usize = 100;

/// The embedded store's second election: a council election with a long candidate list, so
/// the demo has a large page (`/elections/20`, ~16 KiB) besides the short ones.
pub fn demo_long_ballot(now: time::OffsetDateTime) -> Ballot {
    use super::model::BallotOption;
    let mut ballot = demo_ballot(now);
    ballot.election.id = LONG_BALLOT_ID;
    ballot.election.slug = "council-2026".into();
    ballot.election.title = "City Council Election 2026".into();
    ballot.options = (1..=LONG_BALLOT_CANDIDATES)
        .map(|n| BallotOption {
            id: i32::try_from(n).unwrap_or(i32::MAX),
            label: format!(
                "Candidate {n:03} for Ward {:02}, independent list",
                n % 12 + 1
            ),
        })
        .collect();
    ballot
}
