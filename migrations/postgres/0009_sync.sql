-- Sources pulled from vendor query APIs (SyncService), with their state and
-- lease, and one checkpoint per (source, task).
CREATE TABLE sync_sources (
    tenant_id          TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    source             BIGINT NOT NULL,
    base_url           TEXT    NOT NULL,
    -- JSON array of task ids; JSON object of headers (never returned).
    task_ids           TEXT    NOT NULL,
    headers            TEXT    NOT NULL,
    interval_ms        BIGINT NOT NULL DEFAULT 0,
    overlap_ms         BIGINT NOT NULL,
    start_time         BIGINT,
    create_time        BIGINT NOT NULL,
    -- The replica pulling the source now, until lease_expires (ms).
    lease_owner        TEXT,
    lease_expires      BIGINT,
    last_run_time      BIGINT,
    last_success_time  BIGINT,
    last_error         TEXT    NOT NULL DEFAULT '',
    calls_synced       BIGINT NOT NULL DEFAULT 0,
    newest_update_time BIGINT,
    pages              BIGINT NOT NULL DEFAULT 0,
    errors             BIGINT NOT NULL DEFAULT 0,
    retries            BIGINT NOT NULL DEFAULT 0,
    vendor_requests    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE sync_checkpoints (
    tenant_id    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    -- The window being pulled (or last pulled), ms.
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    -- The next page to pull; 0 once the window is complete.
    next_page    BIGINT NOT NULL,
    -- No page of this window was lost to an error so far.
    clean        BOOLEAN NOT NULL,
    -- The end of the last window pulled completely and cleanly.
    synced_to    BIGINT,
    vendor_total BIGINT NOT NULL DEFAULT 0,
    held         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, name, task_id)
);

-- Row-level security as in 0004.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sync_sources', 'sync_checkpoints'] LOOP
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
