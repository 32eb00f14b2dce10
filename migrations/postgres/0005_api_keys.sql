-- API keys. The one table not keyed by tenant: a key is looked up by its id
-- before the tenant is known (the tenant is what the key tells us), so the
-- primary key is key_id alone and the table has no row-level security (a
-- policy on callscope.tenant would hide every key from the look-up). When the
-- schema is distributed by tenant (Citus), this is a reference table, copied
-- to every node.
--
-- Only the SHA-256 of a key's secret is kept. Times are milliseconds since
-- the Unix epoch; revoke_time is set once and never cleared.
CREATE TABLE api_keys (
    key_id         TEXT   NOT NULL PRIMARY KEY,
    tenant_id      TEXT   NOT NULL,
    role           TEXT   NOT NULL CHECK (role IN ('read', 'ingest', 'admin')),
    name           TEXT   NOT NULL,
    secret_hash    BYTEA  NOT NULL,
    create_time    BIGINT NOT NULL,
    last_used_time BIGINT,
    revoke_time    BIGINT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, create_time);
