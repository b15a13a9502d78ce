-- The election reference workload.
CREATE TABLE elections (
    id          bigint PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    title       text NOT NULL,
    opens_at    timestamptz NOT NULL,
    closes_at   timestamptz NOT NULL,
    CHECK (closes_at > opens_at)
);

CREATE TABLE ballot_options (
    election_id bigint NOT NULL REFERENCES elections (id),
    option_id   integer NOT NULL,
    label       text NOT NULL,
    PRIMARY KEY (election_id, option_id)
);

-- One vote per voter and election: the primary key makes casting idempotent.
CREATE TABLE votes (
    election_id bigint NOT NULL,
    voter_id    text NOT NULL,
    option_id   integer NOT NULL,
    receipt     text NOT NULL UNIQUE,
    cast_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (election_id, voter_id),
    FOREIGN KEY (election_id, option_id) REFERENCES ballot_options (election_id, option_id)
);

CREATE INDEX votes_by_option ON votes (election_id, option_id);
