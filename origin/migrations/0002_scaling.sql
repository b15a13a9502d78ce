-- Scaling hooks: scheduled events, emergency scale-ups, the audit log, and the lease that
-- lets one origin process at a time apply them to the cluster. Times are ms since the epoch.
CREATE TABLE scaling_events (
    name        text PRIMARY KEY,
    starts_at   bigint NOT NULL,
    ends_at     bigint NOT NULL,
    targets     jsonb NOT NULL,
    warm_cache  boolean NOT NULL,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'active', 'done')),
    CHECK (ends_at > starts_at)
);

CREATE TABLE scaling_emergencies (
    id          bigserial PRIMARY KEY,
    targets     jsonb NOT NULL,
    reason      text NOT NULL,
    started_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    reverted    boolean NOT NULL DEFAULT false
);

CREATE TABLE scaling_audit (
    id          bigserial PRIMARY KEY,
    at          bigint NOT NULL,
    action      text NOT NULL,
    detail      text NOT NULL
);

CREATE TABLE scaling_lease (
    id          integer PRIMARY KEY CHECK (id = 1),
    holder      text NOT NULL,
    until_ms    bigint NOT NULL
);
