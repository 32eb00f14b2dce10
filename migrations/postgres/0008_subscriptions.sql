-- Outgoing events: webhook subscriptions with their delivery state, and the
-- position of each message-bus sink. A subscription's `position` (and a
-- sink's) is the event-log position up to which every event was handled
-- (acknowledged, given up, or not wanted): it is committed with the outcome,
-- so a restart, even after kill -9, resumes exactly there.
--
-- `lease_owner`/`lease_until` let several replicas share the work: a worker
-- claims a row (SELECT … FOR UPDATE SKIP LOCKED, then sets the lease) and
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
    create_time     BIGINT NOT NULL,
    state           BIGINT NOT NULL,
    last_error      TEXT   NOT NULL DEFAULT '',
    position        BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, subscription_id)
);

-- One row per event a subscription tried to deliver, over all its attempts.
CREATE TABLE deliveries (
    tenant_id          TEXT   NOT NULL,
    subscription_id    TEXT   NOT NULL,
    position           BIGINT NOT NULL,
    event_id           TEXT   NOT NULL,
    event_type         BIGINT NOT NULL,
    call_id            TEXT   NOT NULL,
    state              BIGINT NOT NULL,
    attempts           BIGINT NOT NULL,
    last_status        BIGINT NOT NULL,
    last_error         TEXT   NOT NULL,
    first_attempt_time BIGINT NOT NULL,
    last_attempt_time  BIGINT NOT NULL,
    next_retry_time    BIGINT,
    PRIMARY KEY (tenant_id, subscription_id, position)
);

-- Where each sink (`nats`) stands in each tenant's event log.
CREATE TABLE event_sinks (
    tenant_id   TEXT   NOT NULL,
    sink        TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, sink)
);

-- Tenant data, walled like every other tenant table (0004).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subscriptions', 'deliveries', 'event_sinks'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = current_setting(''callscope.tenant'', true)) '
            'WITH CHECK (tenant_id = current_setting(''callscope.tenant'', true))',
            t);
    END LOOP;
END
$$;
