-- The event log: one row per committed insert, update or delete of a call,
-- written in the transaction of the change itself, so an event exists exactly
-- when its change committed. WatchCalls, the outgoing webhooks and the NATS
-- sink all read it.
--
-- Positions are per tenant, 1, 2, 3, … with no holes, and in commit order:
-- a transaction takes its positions from the tenant's row of `event_heads`
-- with `INSERT … ON CONFLICT DO UPDATE … RETURNING` as its last step, and the
-- row lock it gets holds every other event-writing transaction of that tenant
-- back until it commits or rolls back. So when a reader sees position n, it
-- sees every position below n (a global sequence would not give that: a later
-- value can commit first and a reader would skip the earlier one for good).
-- The cost is that the tenant's writers serialise over the last statements
-- and the commit of their transaction; other tenants are not affected.
CREATE TABLE call_events (
    tenant_id   TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    -- CallEventType wire number: 1 created, 2 updated, 3 deleted.
    event_type  BIGINT NOT NULL,
    call_id     TEXT   NOT NULL,
    -- Milliseconds since the epoch, taken in the writing transaction.
    event_time  BIGINT NOT NULL,
    -- The call as committed (as before deletion for a delete), without its
    -- dialogue turns, as JSON. ErasePhone rewrites the events of the calls it
    -- erases without the number.
    call_json   TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, position)
);
CREATE INDEX call_events_by_call ON call_events (tenant_id, call_id);
CREATE INDEX call_events_by_time ON call_events (tenant_id, event_time);

ALTER TABLE call_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE call_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON call_events
    USING (tenant_id = current_setting('callscope.tenant', true))
    WITH CHECK (tenant_id = current_setting('callscope.tenant', true));

-- Per tenant: the last position handed out, and the last position the event
-- retention removed (a resume token at or above it can still be served). Like
-- `tenants`, it holds tenant ids and counters only, and has no policy: the
-- delivery workers walk every tenant's head to find new events.
CREATE TABLE event_heads (
    tenant_id      TEXT   NOT NULL PRIMARY KEY,
    last_position  BIGINT NOT NULL,
    purged_through BIGINT NOT NULL DEFAULT 0
);
