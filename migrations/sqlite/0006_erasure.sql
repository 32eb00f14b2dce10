-- Erasure, retention and the quarantine's caps.

-- A tombstone per call removed by AdminService.ErasePhone: only the vendor's
-- key and when, never the number. The write path looks keys up here, so a
-- vendor's redelivery of an erased call is not stored again.
CREATE TABLE erased_calls (
    tenant_id   TEXT    NOT NULL,
    source      INTEGER NOT NULL,
    external_id TEXT    NOT NULL,
    erase_time  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, source, external_id)
);

-- Every tenant that ever stored a call or a quarantined record, written by
-- the write path. The retention purge runs per tenant and finds them here
-- (on PostgreSQL, row-level security hides other tenants' rows from a
-- `SELECT DISTINCT tenant_id`). It holds tenant ids only, no tenant data.
CREATE TABLE tenants (
    tenant_id  TEXT    NOT NULL PRIMARY KEY
);
INSERT INTO tenants (tenant_id)
    SELECT tenant_id FROM calls UNION SELECT tenant_id FROM rejected_records;

-- The quarantine's caps are per tenant and source, dropping the oldest first.
CREATE INDEX rejected_records_by_source_time
    ON rejected_records (tenant_id, source, receive_time, record_id);
