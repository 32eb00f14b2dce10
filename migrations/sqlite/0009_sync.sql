-- Sources pulled from vendor query APIs (SyncService), with their state and
-- lease, and one checkpoint per (source, task).
CREATE TABLE sync_sources (
    tenant_id          TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    source             INTEGER NOT NULL,
    base_url           TEXT    NOT NULL,
    -- JSON array of task ids; JSON object of headers (never returned).
    task_ids           TEXT    NOT NULL,
    headers            TEXT    NOT NULL,
    interval_ms        INTEGER NOT NULL DEFAULT 0,
    overlap_ms         INTEGER NOT NULL,
    start_time         INTEGER,
    create_time        INTEGER NOT NULL,
    -- The replica pulling the source now, until lease_expires (ms).
    lease_owner        TEXT,
    lease_expires      INTEGER,
    last_run_time      INTEGER,
    last_success_time  INTEGER,
    last_error         TEXT    NOT NULL DEFAULT '',
    calls_synced       INTEGER NOT NULL DEFAULT 0,
    newest_update_time INTEGER,
    pages              INTEGER NOT NULL DEFAULT 0,
    errors             INTEGER NOT NULL DEFAULT 0,
    retries            INTEGER NOT NULL DEFAULT 0,
    vendor_requests    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE sync_checkpoints (
    tenant_id    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    task_id      TEXT    NOT NULL,
    -- The window being pulled (or last pulled), ms.
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    -- The next page to pull; 0 once the window is complete.
    next_page    INTEGER NOT NULL,
    -- No page of this window was lost to an error so far.
    clean        INTEGER NOT NULL,
    -- The end of the last window pulled completely and cleanly.
    synced_to    INTEGER,
    vendor_total INTEGER NOT NULL DEFAULT 0,
    held         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, name, task_id)
);
