-- Outgoing events: webhook subscriptions with their delivery state, and the
-- position of each message-bus sink. A subscription's `position` (and a
-- sink's) is the event-log position up to which every event was handled
-- (acknowledged, given up, or not wanted): it is committed with the outcome,
-- so a restart, even after kill -9, resumes exactly there.
--
-- `lease_owner`/`lease_until` let several replicas share the work: a worker
-- claims a row by setting the lease (on SQLite inside BEGIN IMMEDIATE, so one
-- claim at a time; PostgreSQL adds FOR UPDATE SKIP LOCKED) and
-- every later write of it is fenced by `lease_owner`. While an event waits
-- for its retry, `lease_until` is the retry time, so nobody claims it early.
-- The signing secret is kept as given to the client: signing needs it.
CREATE TABLE subscriptions (
    tenant_id       TEXT   NOT NULL,
    subscription_id TEXT   NOT NULL,
    url             TEXT   NOT NULL,
    filter          TEXT   NOT NULL,
    event_types     TEXT   NOT NULL,
    secret          TEXT   NOT NULL,
    create_time     INTEGER NOT NULL,
    state           INTEGER NOT NULL,
    last_error      TEXT   NOT NULL DEFAULT '',
    position        INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, subscription_id)
);

-- One row per event a subscription tried to deliver, over all its attempts.
CREATE TABLE deliveries (
    tenant_id          TEXT   NOT NULL,
    subscription_id    TEXT   NOT NULL,
    position           INTEGER NOT NULL,
    event_id           TEXT   NOT NULL,
    event_type         INTEGER NOT NULL,
    call_id            TEXT   NOT NULL,
    state              INTEGER NOT NULL,
    attempts           INTEGER NOT NULL,
    last_status        INTEGER NOT NULL,
    last_error         TEXT   NOT NULL,
    first_attempt_time INTEGER NOT NULL,
    last_attempt_time  INTEGER NOT NULL,
    next_retry_time    INTEGER,
    PRIMARY KEY (tenant_id, subscription_id, position)
);

-- Where each sink (`nats`) stands in each tenant's event log.
CREATE TABLE event_sinks (
    tenant_id   TEXT   NOT NULL,
    sink        TEXT   NOT NULL,
    position    INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, sink)
);

