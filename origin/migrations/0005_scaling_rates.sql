-- The deployment's request rate per minute for the predictive floor: every origin pod adds
-- the count of each minute it closes, so a row holds all pods' requests in that minute. A
-- flush deletes minutes more than two weeks older than the newest, so the table stays at
-- most 20,160 rows; a restart keeps the history the Holt-Winters forecast needs.
CREATE TABLE scaling_rates (
    minute      bigint PRIMARY KEY CHECK (minute >= 0),
    requests    bigint NOT NULL CHECK (requests >= 0)
);
