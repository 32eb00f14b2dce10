-- The kept state of every number of every task's dialing list (issue 14):
-- ListTaskNumbers and GetTask read it instead of deriving each number's
-- latest call and attempts from `calls` per query.
--
-- A number belongs to a task when it is in `task_numbers` or a call of the
-- task went to it. Triggers on `calls` and `task_numbers` keep the state on
-- every write path (ingest, merges, sync pages, DeleteCalls, retention,
-- ErasePhone, uploads, vendor number lists), so no path can forget it.
-- The state holds the latest call's outcome, not the dial status: the
-- outcome → status mapping lives in Rust (domain::task_number).
-- Calls and numbers without a task (task_id '') have no state: no query
-- can name that task.
--
-- Concurrency (READ COMMITTED): an arriving call is an INSERT … ON CONFLICT
-- DO UPDATE, which locks the state row and compares against its latest
-- committed version, so concurrent arrivals commute. A departing latest call
-- is recomputed only after the UPDATE that locked the row, by a statement
-- whose fresh snapshot sees every call whose writer held the lock before.
CREATE TABLE task_number_states (
    tenant_id          TEXT    NOT NULL,
    task_id            TEXT    NOT NULL,
    phone              TEXT    NOT NULL,
    -- 1 while the number is in task_numbers (uploaded or vendor-listed).
    listed             SMALLINT NOT NULL DEFAULT 0,
    -- task_numbers.status_code, kept for the status filter of numbers
    -- without a call.
    vendor_status_code BIGINT,
    -- Calls of the task to the number.
    attempts           BIGINT  NOT NULL DEFAULT 0,
    -- The latest call (call_time, then call_id, highest); NULL without calls.
    last_call_id       TEXT,
    last_call_time     BIGINT,
    last_outcome       BIGINT,
    PRIMARY KEY (tenant_id, task_id, phone)
);
-- A status filter reads, per outcome that maps to a wanted status, one range
-- of this index in phone order; the task's numbers by status count it.
CREATE INDEX task_number_states_by_outcome
    ON task_number_states (tenant_id, task_id, last_outcome, phone);
-- Numbers without a call take the vendor's status (or waiting).
CREATE INDEX task_number_states_uncalled
    ON task_number_states (tenant_id, task_id, vendor_status_code, phone)
    WHERE last_outcome IS NULL;

ALTER TABLE task_number_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE task_number_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON task_number_states
    USING (tenant_id = current_setting('callscope.tenant', true))
    WITH CHECK (tenant_id = current_setting('callscope.tenant', true));

-- One call arrives at (tenant, task, phone).
CREATE FUNCTION number_state_call_arrives(t TEXT, k TEXT, p TEXT, id TEXT, at BIGINT, o BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF k = '' THEN
        RETURN;
    END IF;
    INSERT INTO task_number_states AS s (tenant_id, task_id, phone, attempts,
        last_call_id, last_call_time, last_outcome)
    VALUES (t, k, p, 1, id, at, o)
    ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
        attempts = s.attempts + 1,
        last_outcome = CASE WHEN s.last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (s.last_call_time, s.last_call_id)
            THEN excluded.last_outcome ELSE s.last_outcome END,
        last_call_time = CASE WHEN s.last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (s.last_call_time, s.last_call_id)
            THEN excluded.last_call_time ELSE s.last_call_time END,
        last_call_id = CASE WHEN s.last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (s.last_call_time, s.last_call_id)
            THEN excluded.last_call_id ELSE s.last_call_id END;
END
$$;

-- One call leaves (tenant, task, phone): one attempt less, the latest read
-- again when it was this call, the row gone when nothing keeps the number.
CREATE FUNCTION number_state_call_leaves(t TEXT, k TEXT, p TEXT, id TEXT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    was_latest BOOLEAN;
BEGIN
    IF k = '' THEN
        RETURN;
    END IF;
    UPDATE task_number_states SET attempts = attempts - 1
        WHERE tenant_id = t AND task_id = k AND phone = p
        RETURNING last_call_id = id INTO was_latest;
    IF was_latest THEN
        UPDATE task_number_states SET (last_call_id, last_call_time, last_outcome) = (
                SELECT l.call_id, l.call_time, l.outcome FROM calls l
                WHERE l.tenant_id = t AND l.task_id = k AND l.callee = p
                ORDER BY l.call_time DESC, l.call_id DESC LIMIT 1)
            WHERE tenant_id = t AND task_id = k AND phone = p;
    END IF;
    DELETE FROM task_number_states
        WHERE tenant_id = t AND task_id = k AND phone = p AND attempts <= 0 AND listed = 0;
END
$$;

CREATE FUNCTION calls_keep_number_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM number_state_call_leaves(OLD.tenant_id, OLD.task_id, OLD.callee, OLD.call_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM number_state_call_arrives(NEW.tenant_id, NEW.task_id, NEW.callee, NEW.call_id,
            NEW.call_time, NEW.outcome);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER calls_keep_number_state_insert AFTER INSERT ON calls
    FOR EACH ROW WHEN (NEW.task_id <> '') EXECUTE FUNCTION calls_keep_number_state();
CREATE TRIGGER calls_keep_number_state_delete AFTER DELETE ON calls
    FOR EACH ROW WHEN (OLD.task_id <> '') EXECUTE FUNCTION calls_keep_number_state();
-- Upserts that rewrite the same values do nothing.
CREATE TRIGGER calls_keep_number_state_update
    AFTER UPDATE OF call_id, task_id, callee, call_time, outcome ON calls
    FOR EACH ROW WHEN (OLD.call_id IS DISTINCT FROM NEW.call_id
        OR OLD.task_id IS DISTINCT FROM NEW.task_id OR OLD.callee IS DISTINCT FROM NEW.callee
        OR OLD.call_time IS DISTINCT FROM NEW.call_time OR OLD.outcome IS DISTINCT FROM NEW.outcome)
    EXECUTE FUNCTION calls_keep_number_state();

CREATE FUNCTION task_numbers_keep_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.task_id <> '' THEN
        UPDATE task_number_states SET listed = 0, vendor_status_code = NULL
            WHERE tenant_id = OLD.tenant_id AND task_id = OLD.task_id AND phone = OLD.phone;
        DELETE FROM task_number_states
            WHERE tenant_id = OLD.tenant_id AND task_id = OLD.task_id AND phone = OLD.phone
              AND attempts <= 0 AND listed = 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.task_id <> '' THEN
        INSERT INTO task_number_states (tenant_id, task_id, phone, listed, vendor_status_code)
        VALUES (NEW.tenant_id, NEW.task_id, NEW.phone, 1, NEW.status_code)
        ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
            listed = 1, vendor_status_code = excluded.vendor_status_code;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_numbers_keep_state_insert AFTER INSERT ON task_numbers
    FOR EACH ROW WHEN (NEW.task_id <> '') EXECUTE FUNCTION task_numbers_keep_state();
CREATE TRIGGER task_numbers_keep_state_delete AFTER DELETE ON task_numbers
    FOR EACH ROW WHEN (OLD.task_id <> '') EXECUTE FUNCTION task_numbers_keep_state();
CREATE TRIGGER task_numbers_keep_state_update
    AFTER UPDATE OF task_id, phone, status_code ON task_numbers
    FOR EACH ROW WHEN (OLD.task_id IS DISTINCT FROM NEW.task_id
        OR OLD.phone IS DISTINCT FROM NEW.phone OR OLD.status_code IS DISTINCT FROM NEW.status_code)
    EXECUTE FUNCTION task_numbers_keep_state();

-- The state of what is stored already, tenant by tenant: under row-level
-- security each tenant's rows are visible only with its setting. (A role that
-- bypasses row-level security sees them all in the first round.)
DO $$
DECLARE
    t TEXT;
BEGIN
    FOR t IN SELECT tenant_id FROM tenants ORDER BY tenant_id LOOP
        PERFORM set_config('callscope.tenant', t, true);
        INSERT INTO task_number_states (tenant_id, task_id, phone, attempts,
            last_call_id, last_call_time, last_outcome)
        SELECT c.tenant_id, c.task_id, c.callee, c.attempts, l.call_id, l.call_time, l.outcome
        FROM (SELECT tenant_id, task_id, callee, COUNT(*) AS attempts FROM calls
              WHERE tenant_id = t AND task_id <> '' GROUP BY tenant_id, task_id, callee) c
        CROSS JOIN LATERAL (SELECT call_id, call_time, outcome FROM calls l
              WHERE l.tenant_id = c.tenant_id AND l.task_id = c.task_id AND l.callee = c.callee
              ORDER BY l.call_time DESC, l.call_id DESC LIMIT 1) l
        ON CONFLICT DO NOTHING;
        INSERT INTO task_number_states (tenant_id, task_id, phone, listed, vendor_status_code)
        SELECT tenant_id, task_id, phone, 1, status_code FROM task_numbers
        WHERE tenant_id = t AND task_id <> ''
        ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
            listed = 1, vendor_status_code = excluded.vendor_status_code;
    END LOOP;
    PERFORM set_config('callscope.tenant', '', true);
END
$$;

-- GetTask's call figures kept per task (issue 15): calls by intent level
-- ('' for none) and outcome. Totals, answered calls and calls by level are
-- sums over a task's rows.
--
-- A counter row per key updated by every call would be a hot row: every
-- ingest transaction of the task would wait for the one before it to commit,
-- and two batches locking keys in different orders would deadlock. So each
-- statement on `calls` only appends its net change per key (statement
-- triggers over the transition tables: one row per key a statement changed,
-- never a lock another writer waits for), and a task's rows are folded into
-- one per key by whichever statement finds more than 1,024 of them and wins
-- the task's advisory lock (others skip folding; readers sum either way).
CREATE TABLE task_call_counts (
    tenant_id       TEXT   NOT NULL,
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    task_id         TEXT   NOT NULL,
    intent_level_id TEXT   NOT NULL,
    outcome         BIGINT NOT NULL,
    calls           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX task_call_counts_by_task
    ON task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls);
ALTER TABLE task_call_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE task_call_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON task_call_counts
    USING (tenant_id = current_setting('callscope.tenant', true))
    WITH CHECK (tenant_id = current_setting('callscope.tenant', true));

-- Folds a task's rows into one per key, unless another transaction is
-- folding it. Rows appended meanwhile by uncommitted writers are not seen by
-- the DELETE and stay as they are.
CREATE FUNCTION task_call_counts_fold(t TEXT, k TEXT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT COUNT(*) FROM (SELECT 1 FROM task_call_counts
            WHERE tenant_id = t AND task_id = k LIMIT 1025) r) <= 1024 THEN
        RETURN;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtextextended('task_call_counts:' || t || ':' || k, 0)) THEN
        RETURN;
    END IF;
    WITH gone AS (
        DELETE FROM task_call_counts WHERE tenant_id = t AND task_id = k
        RETURNING intent_level_id, outcome, calls)
    INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
    SELECT t, k, intent_level_id, outcome, SUM(calls) FROM gone
    GROUP BY intent_level_id, outcome HAVING SUM(calls) <> 0;
END
$$;

-- Appends a statement's net change per key, then folds the tasks it touched.
CREATE FUNCTION calls_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
    SELECT tenant_id, task_id, COALESCE(intent_level_id, ''), outcome, COUNT(*)
    FROM added WHERE task_id <> ''
    GROUP BY tenant_id, task_id, COALESCE(intent_level_id, ''), outcome;
    FOR touched IN SELECT DISTINCT tenant_id, task_id FROM added WHERE task_id <> '' LOOP
        PERFORM task_call_counts_fold(touched.tenant_id, touched.task_id);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION calls_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
    SELECT tenant_id, task_id, COALESCE(intent_level_id, ''), outcome, -COUNT(*)
    FROM removed WHERE task_id <> ''
    GROUP BY tenant_id, task_id, COALESCE(intent_level_id, ''), outcome;
    FOR touched IN SELECT DISTINCT tenant_id, task_id FROM removed WHERE task_id <> '' LOOP
        PERFORM task_call_counts_fold(touched.tenant_id, touched.task_id);
    END LOOP;
    RETURN NULL;
END
$$;

-- Rewrites that change none of the keys cancel out and append nothing.
CREATE FUNCTION calls_count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
    SELECT tenant_id, task_id, level, outcome, SUM(n) FROM (
        SELECT tenant_id, task_id, COALESCE(intent_level_id, '') AS level, outcome, 1 AS n
        FROM added WHERE task_id <> ''
        UNION ALL
        SELECT tenant_id, task_id, COALESCE(intent_level_id, ''), outcome, -1
        FROM removed WHERE task_id <> '') d
    GROUP BY tenant_id, task_id, level, outcome HAVING SUM(n) <> 0;
    FOR touched IN
        SELECT DISTINCT tenant_id, task_id FROM (
            SELECT tenant_id, task_id FROM added WHERE task_id <> ''
            UNION ALL
            SELECT tenant_id, task_id FROM removed WHERE task_id <> '') x
    LOOP
        PERFORM task_call_counts_fold(touched.tenant_id, touched.task_id);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER calls_count_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION calls_count_added();
CREATE TRIGGER calls_count_delete AFTER DELETE ON calls
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION calls_count_removed();
CREATE TRIGGER calls_count_update AFTER UPDATE ON calls
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION calls_count_changed();

-- The counts of what is stored already, tenant by tenant (as above).
DO $$
DECLARE
    t TEXT;
BEGIN
    FOR t IN SELECT tenant_id FROM tenants ORDER BY tenant_id LOOP
        PERFORM set_config('callscope.tenant', t, true);
        INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
        SELECT tenant_id, task_id, COALESCE(intent_level_id, ''), outcome, COUNT(*)
        FROM calls WHERE tenant_id = t AND task_id <> ''
        GROUP BY tenant_id, task_id, COALESCE(intent_level_id, ''), outcome;
    END LOOP;
    PERFORM set_config('callscope.tenant', '', true);
END
$$;
