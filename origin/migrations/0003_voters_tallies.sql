-- Registered voters and O(1) tallies. On every vote shard (and the main database).
--
-- Citus-compatible: every unique key holds voter_id, the distribution column of votes and
-- voters; elections and ballot_options are reference data written to every shard.

-- A voter, the elections they may vote in, and the keyed SHA-256 of their voting code.
CREATE TABLE voters (
    voter_id      text PRIMARY KEY,
    elections     bigint[] NOT NULL CHECK (cardinality(elections) > 0),
    code_hash     bytea NOT NULL CHECK (octet_length(code_hash) = 32),
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- Receipts are 128 random bits; a unique key without voter_id would not distribute.
ALTER TABLE votes DROP CONSTRAINT votes_receipt_key;

-- Running counts per option, split into slots so concurrent batches never wait on one row;
-- updated in the same statement as the votes they count.
CREATE TABLE tallies (
    election_id bigint NOT NULL,
    option_id   integer NOT NULL,
    slot        integer NOT NULL,
    votes       bigint NOT NULL CHECK (votes >= 0),
    PRIMARY KEY (election_id, option_id, slot),
    FOREIGN KEY (election_id, option_id) REFERENCES ballot_options (election_id, option_id)
);

INSERT INTO tallies (election_id, option_id, slot, votes)
SELECT election_id, option_id, 0, count(*) FROM votes GROUP BY election_id, option_id;
