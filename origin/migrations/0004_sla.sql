-- The SLA tracker's minutes: requests, 5xx answers and answers slower than the latency
-- objective, per region and minute (minutes since the Unix epoch), added to by every origin
-- process. Rows older than the 30-day budget period are deleted as new ones arrive.
CREATE TABLE sla_minutes (
    region text NOT NULL,
    minute bigint NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    slow bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (region, minute)
);
CREATE INDEX sla_minutes_minute ON sla_minutes (minute);
