//! The embedded store: everything in this process's memory, seeded with the demo elections
//! (the general election, and a council election with a long ballot).
//! For running Surge with nothing installed; votes do not survive a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use time::OffsetDateTime;

use super::{ElectionStore, StoreFuture, demo_ballot, demo_long_ballot};
use crate::domain::model::{
    Ballot, Cast, Credential, Election, NewVote, Receipt, Registration, Results, Tally,
};

/// An in-memory store.
pub struct MemoryStore {
    ballots: BTreeMap<i64, Ballot>,
    votes: Mutex<BTreeMap<(i64, String), Receipt>>,
    tallies: Mutex<HashMap<(i64, i32), i64>>,
    voters: Mutex<HashMap<String, Credential>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStore {
    /// A store holding the demo elections.
    pub fn demo() -> Self {
        let now = OffsetDateTime::now_utc();
        let (ballot, long) = (demo_ballot(now), demo_long_ballot(now));
        Self {
            ballots: BTreeMap::from([(ballot.election.id, ballot), (long.election.id, long)]),
            votes: Mutex::new(BTreeMap::new()),
            tallies: Mutex::new(HashMap::new()),
            voters: Mutex::new(HashMap::new()),
        }
    }
}

impl ElectionStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn elections(&self) -> StoreFuture<'_, Vec<Election>> {
        let list = self.ballots.values().map(|b| b.election.clone()).collect();
        Box::pin(async move { Ok(list) })
    }

    fn election(&self, id: i64) -> StoreFuture<'_, Option<Election>> {
        let found = self.ballots.get(&id).map(|b| b.election.clone());
        Box::pin(async move { Ok(found) })
    }

    fn ballot(&self, id: i64) -> StoreFuture<'_, Option<Ballot>> {
        let found = self.ballots.get(&id).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn results(&self, id: i64) -> StoreFuture<'_, Option<Results>> {
        let found = self.ballots.get(&id).map(|ballot| {
            let counts = locked(&self.tallies);
            let tallies: Vec<Tally> = ballot
                .options
                .iter()
                .map(|o| Tally {
                    option_id: o.id,
                    label: o.label.clone(),
                    votes: counts.get(&(id, o.id)).copied().unwrap_or(0),
                })
                .collect();
            Results {
                election_id: id,
                total: tallies.iter().map(|t| t.votes).sum(),
                tallies,
                counted_at: OffsetDateTime::now_utc(),
            }
        });
        Box::pin(async move { Ok(found) })
    }

    fn cast(&self, vote: NewVote) -> StoreFuture<'_, Cast> {
        let eligible = locked(&self.voters)
            .get(&vote.voter_id)
            .is_some_and(|c| c.elections.contains(&vote.election_id));
        let on_ballot = self
            .ballots
            .get(&vote.election_id)
            .is_some_and(|b| b.options.iter().any(|o| o.id == vote.option_id));
        let outcome = if !eligible {
            Cast::NotEligible
        } else if !on_ballot {
            Cast::UnknownOption
        } else {
            let mut votes = locked(&self.votes);
            match votes.get(&(vote.election_id, vote.voter_id.clone())) {
                Some(r) if r.option_id == vote.option_id => Cast::AlreadyRecorded(r.clone()),
                Some(_) => Cast::Conflict,
                None => {
                    let receipt = Receipt {
                        election_id: vote.election_id,
                        option_id: vote.option_id,
                        receipt: vote.receipt,
                        cast_at: OffsetDateTime::now_utc(),
                    };
                    votes.insert((vote.election_id, vote.voter_id), receipt.clone());
                    *locked(&self.tallies)
                        .entry((vote.election_id, vote.option_id))
                        .or_default() += 1;
                    Cast::Recorded(receipt)
                }
            }
        };
        Box::pin(async move { Ok(outcome) })
    }

    fn vote_of(&self, election_id: i64, voter_id: String) -> StoreFuture<'_, Option<Receipt>> {
        let found = locked(&self.votes).get(&(election_id, voter_id)).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn credential(&self, voter_id: String) -> StoreFuture<'_, Option<Credential>> {
        let found = locked(&self.voters).get(&voter_id).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn register(&self, voters: Vec<Registration>) -> StoreFuture<'_, Vec<String>> {
        let mut known = locked(&self.voters);
        let mut existing = Vec::new();
        for r in voters {
            match known.entry(r.voter_id) {
                std::collections::hash_map::Entry::Occupied(e) => existing.push(e.key().clone()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Credential {
                        code_hash: r.code_hash.to_vec(),
                        elections: r.elections,
                    });
                }
            }
        }
        Box::pin(async move { Ok(existing) })
    }
}
