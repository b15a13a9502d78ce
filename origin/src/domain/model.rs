//! The reference workload's data: elections, ballots, results, votes and receipts, as they
//! travel in JSON and in the cache.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use surge_shared::voter::validate_voter_id;

/// An election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Election {
    /// Its number.
    pub id: i64,
    /// URL-friendly name.
    pub slug: String,
    /// Display title.
    pub title: String,
    /// When voting opens.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub opens_at: OffsetDateTime,
    /// When voting closes.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub closes_at: OffsetDateTime,
}

impl Election {
    /// Whether votes are accepted at `now`.
    pub fn is_open(&self, now: OffsetDateTime) -> bool {
        self.opens_at <= now && now < self.closes_at
    }
}

/// One choice on a ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BallotOption {
    /// Its number within the election.
    pub id: i32,
    /// What the voter sees.
    pub label: String,
}

/// An election and its choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ballot {
    /// The election.
    pub election: Election,
    /// The choices, by id.
    pub options: Vec<BallotOption>,
}

/// Votes for one choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tally {
    /// The choice.
    pub option_id: i32,
    /// Its label.
    pub label: String,
    /// Votes counted.
    pub votes: i64,
}

/// The running count of an election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Results {
    /// The election.
    pub election_id: i64,
    /// Per choice, by id.
    pub tallies: Vec<Tally>,
    /// All votes counted.
    pub total: i64,
    /// When the count was taken.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub counted_at: OffsetDateTime,
}

/// `POST /api/login` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The voter's id (letters, digits, `-`, `_`; at most 64).
    pub voter_id: String,
    /// The voting code issued to the voter.
    pub code: String,
}

/// `POST /api/elections/{id}/votes` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    /// The chosen ballot option.
    pub option_id: i32,
}

/// A vote to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVote {
    /// The election.
    pub election_id: i64,
    /// Who votes.
    pub voter_id: String,
    /// For what.
    pub option_id: i32,
    /// The receipt to issue if this is the voter's first vote.
    pub receipt: String,
}

/// Proof that a vote was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    /// The election.
    pub election_id: i64,
    /// The choice recorded.
    pub option_id: i32,
    /// The receipt id (unique, unguessable).
    pub receipt: String,
    /// When the vote was recorded.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub cast_at: OffsetDateTime,
}

/// A voter as stored: id, eligible elections, the keyed hash of their voting code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The voter.
    pub voter_id: String,
    /// Elections they may vote in.
    pub elections: Vec<i64>,
    /// Keyed hash of their code (32 bytes).
    pub code_hash: [u8; 32],
}

/// What login needs of a registered voter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Keyed hash of their code.
    pub code_hash: Vec<u8>,
    /// Elections they may vote in.
    pub elections: Vec<i64>,
}

/// What casting a vote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cast {
    /// Recorded now.
    Recorded(Receipt),
    /// The same vote was already recorded (a retry): its original receipt.
    AlreadyRecorded(Receipt),
    /// A different vote was already recorded (which one is never said).
    Conflict,
    /// The option is not on this election's ballot.
    UnknownOption,
    /// The voter is not registered for this election.
    NotEligible,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_election_is_open_between_its_bounds() {
        let at = |s| OffsetDateTime::from_unix_timestamp(s).expect("valid");
        let e = Election {
            id: 1,
            slug: "e".into(),
            title: "E".into(),
            opens_at: at(100),
            closes_at: at(200),
        };
        assert!(!e.is_open(at(99)));
        assert!(e.is_open(at(100)));
        assert!(e.is_open(at(199)));
        assert!(!e.is_open(at(200)));
    }
}
