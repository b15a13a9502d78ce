//! The embedded store: everything in this process's memory, seeded with the demo election.
//! For running Surge with nothing installed; votes do not survive a restart.

use std::collections::BTreeMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use super::{ElectionStore, StoreFuture, demo_ballot};
use crate::app::model::{Ballot, Cast, Election, NewVote, Receipt, Results, Tally};

/// An in-memory store.
pub struct MemoryStore {
    ballots: BTreeMap<i64, Ballot>,
    votes: Mutex<BTreeMap<(i64, String), Receipt>>,
}

impl MemoryStore {
    /// A store holding the demo election.
    pub fn demo() -> Self {
        let ballot = demo_ballot(OffsetDateTime::now_utc());
        Self {
            ballots: BTreeMap::from([(ballot.election.id, ballot)]),
            votes: Mutex::new(BTreeMap::new()),
        }
    }

    fn votes(&self) -> std::sync::MutexGuard<'_, BTreeMap<(i64, String), Receipt>> {
        self.votes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            let votes = self.votes();
            let tallies: Vec<Tally> = ballot
                .options
                .iter()
                .map(|o| Tally {
                    option_id: o.id,
                    label: o.label.clone(),
                    votes: votes
                        .iter()
                        .filter(|((e, _), r)| *e == id && r.option_id == o.id)
                        .count()
                        .try_into()
                        .unwrap_or(i64::MAX),
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
        let outcome = match self.ballots.get(&vote.election_id) {
            Some(b) if b.options.iter().any(|o| o.id == vote.option_id) => {
                let mut votes = self.votes();
                match votes.get(&(vote.election_id, vote.voter_id.clone())) {
                    Some(r) if r.option_id == vote.option_id => Cast::AlreadyRecorded(r.clone()),
                    Some(r) => Cast::Conflict(r.clone()),
                    None => {
                        let receipt = Receipt {
                            election_id: vote.election_id,
                            option_id: vote.option_id,
                            receipt: vote.receipt,
                            cast_at: OffsetDateTime::now_utc(),
                        };
                        votes.insert((vote.election_id, vote.voter_id), receipt.clone());
                        Cast::Recorded(receipt)
                    }
                }
            }
            _ => Cast::UnknownOption,
        };
        Box::pin(async move { Ok(outcome) })
    }

    fn vote_of(&self, election_id: i64, voter_id: String) -> StoreFuture<'_, Option<Receipt>> {
        let found = self.votes().get(&(election_id, voter_id)).cloned();
        Box::pin(async move { Ok(found) })
    }
}
