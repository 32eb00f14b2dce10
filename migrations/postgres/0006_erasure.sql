-- Erasure, retention and the quarantine's caps.

-- A tombstone per call removed by AdminService.ErasePhone: only the vendor's
-- key and when, never the number. The write path looks keys up here, so a
-- vendor's redelivery of an erased call is not stored again.
CREATE TABLE erased_calls (
    tenant_id   TEXT   NOT NULL,
    source      BIGINT NOT NULL,
    external_id TEXT   NOT NULL,
    erase_time  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, source, external_id)
);
-- Tenant data, walled like every other tenant table (0004).
ALTER TABLE erased_calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE erased_calls FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON erased_calls
    USING (tenant_id = current_setting('callscope.tenant', true))
    WITH CHECK (tenant_id = current_setting('callscope.tenant', true));

-- Every tenant that ever stored a call or a quarantined record, written by
-- the write path. The retention purge runs per tenant and finds them here:
-- row-level security hides other tenants' rows from a `SELECT DISTINCT
-- tenant_id` on the tenant tables, so they cannot tell. It holds tenant ids
-- only, no tenant data, and is deliberately left without a policy.
CREATE TABLE tenants (
    tenant_id  TEXT NOT NULL PRIMARY KEY
);
-- Tenants with data from before this migration. Under row-level security
-- this sees only what the migrating role may see (everything for a role with
-- BYPASSRLS); a tenant missed here is registered by its next write.
INSERT INTO tenants (tenant_id)
    SELECT tenant_id FROM calls UNION SELECT tenant_id FROM rejected_records;

-- The quarantine's caps are per tenant and source, dropping the oldest first.
CREATE INDEX rejected_records_by_source_time
    ON rejected_records (tenant_id, source, receive_time, record_id);
