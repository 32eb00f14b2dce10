-- Set-based number states for calls that change or leave, and for listed
-- numbers (issue 14).
--
-- 0017 made arriving calls one upsert per statement, but calls that left a
-- number (deleted, or updated to another task, number, time or outcome) and
-- every listed number (`task_numbers`) still ran a PL/pgSQL call per row:
-- the retention purge's 500-call DELETE ran 500 calls of
-- `number_state_call_leaves`, each two to three statements, and an upload of
-- 10,000 numbers ran 10,000 upserts. Now each statement on `calls` or
-- `task_numbers` runs a few statements, whatever its rows.
--
-- What a state holds is unchanged (0015). A statement's departures are all
-- applied before its arrivals; row by row, a swap of two listed numbers'
-- phones in one UPDATE left one of them unlisted, which set by set it does
-- not.
--
-- Concurrency (READ COMMITTED), as in 0015: the states a statement's
-- departures touch are locked first, in the order arrivals upsert them
-- (tenant, then task and phone in byte order), then its arrivals are
-- upserted in that order: each pass locks in one order. Two statements that
-- move calls between the same two numbers in opposite directions can still
-- deadlock across the passes, as the row triggers could; PostgreSQL then
-- fails one, which the store answers as retryable (UNAVAILABLE). A
-- departing latest call is read again only after the lock, by a statement
-- whose fresh snapshot sees every call whose writer held the lock before.
-- Statements that read a stored table run through EXECUTE, so they are
-- planned for this statement's rows (0020).
--
-- The triggers keep their names and are replaced in place (CREATE OR
-- REPLACE TRIGGER, as 0020): a lock that keeps writers out while the
-- migration runs, not readers, where DROP TRIGGER would take the tables'
-- ACCESS EXCLUSIVE lock.

-- The rows a statement's trigger of `op` saw change, as a query over its
-- transition tables of `columns`: what left when `side` is 'left' (the old
-- rows; for an UPDATE, those no new row matches on `columns`), what arrived
-- when 'arrived' (the converse). Rows without a task have no state. An
-- UPDATE that rewrote a row unchanged in `columns` is in neither.
CREATE FUNCTION number_states_rows_sql(op TEXT, side TEXT, columns TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('SELECT %s FROM %I WHERE task_id <> %L', columns, this, '')
        || CASE WHEN op = 'UPDATE'
            THEN format(' EXCEPT ALL SELECT %s FROM %I WHERE task_id <> %L', columns, other, '')
            ELSE '' END
    FROM (SELECT CASE side WHEN 'left' THEN 'removed' ELSE 'added' END AS this,
                 CASE side WHEN 'left' THEN 'added' ELSE 'removed' END AS other) tables
$$;

-- Locks the states of (tenant, task, phone) (arrays of one length) in the
-- order arrivals upsert states.
CREATE FUNCTION number_states_lock(t TEXT[], k TEXT[], p TEXT[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE $q$
        SELECT 1 FROM task_number_states s
        WHERE (s.tenant_id, s.task_id, s.phone) IN (SELECT * FROM unnest($1, $2, $3))
        ORDER BY s.tenant_id, s.task_id COLLATE "C", s.phone COLLATE "C"
        FOR UPDATE OF s
        $q$ USING t, k, p;
END
$$;

-- Deletes the states of (tenant, task, phone), none when NULL: states the
-- caller found kept by nothing while it held their locks. No filter on the
-- states' columns: see the departures below.
CREATE FUNCTION number_states_delete(t TEXT[], k TEXT[], p TEXT[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF t IS NULL THEN
        RETURN;
    END IF;
    EXECUTE $q$
        DELETE FROM task_number_states s
        WHERE (s.tenant_id, s.task_id, s.phone) IN (SELECT * FROM unnest($1, $2, $3))
        $q$ USING t, k, p;
END
$$;

-- One trigger function for the three number-state triggers of `calls`.
CREATE FUNCTION calls_number_states_follow() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    -- What a call's state depends on.
    compared CONSTANT TEXT := 'tenant_id, task_id, callee, call_id, call_time, outcome';
    t TEXT[];
    k TEXT[];
    p TEXT[];
    id TEXT[];
    -- States whose latest call left (r…), and states nothing keeps (e…).
    rt TEXT[];
    rk TEXT[];
    rp TEXT[];
    et TEXT[];
    ek TEXT[];
    ep TEXT[];
BEGIN
    IF TG_OP <> 'INSERT' THEN
        EXECUTE 'SELECT array_agg(tenant_id), array_agg(task_id), array_agg(callee), '
            'array_agg(call_id) FROM (' || number_states_rows_sql(TG_OP, 'left', compared) || ') x'
            INTO t, k, p, id;
    END IF;
    -- Departures: one attempt less a call, the latest read again where it
    -- left, and the states nothing keeps any more deleted. Which states need
    -- which comes back from the UPDATE, not from a filter on the states
    -- table: its statistics predate this statement's changes, and a plan
    -- that took "attempts <= 0" for one row joined 40,000 departing calls
    -- with 40,000 states row by row (110 s).
    IF t IS NOT NULL THEN
        PERFORM number_states_lock(t, k, p);
        EXECUTE $q$
            WITH changed AS (
                UPDATE task_number_states s SET attempts = s.attempts - g.n
                FROM (SELECT x.t, x.k, x.p, COUNT(*) AS n, array_agg(x.id) AS ids
                      FROM unnest($1, $2, $3, $4) AS x(t, k, p, id)
                      GROUP BY x.t, x.k, x.p) g
                WHERE s.tenant_id = g.t AND s.task_id = g.k AND s.phone = g.p
                RETURNING s.tenant_id, s.task_id, s.phone,
                    s.attempts <= 0 AND s.listed = 0 AS kept_by_nothing,
                    s.last_call_id = ANY (g.ids) AS latest_left)
            SELECT
                array_agg(tenant_id) FILTER (WHERE latest_left AND NOT kept_by_nothing),
                array_agg(task_id) FILTER (WHERE latest_left AND NOT kept_by_nothing),
                array_agg(phone) FILTER (WHERE latest_left AND NOT kept_by_nothing),
                array_agg(tenant_id) FILTER (WHERE kept_by_nothing),
                array_agg(task_id) FILTER (WHERE kept_by_nothing),
                array_agg(phone) FILTER (WHERE kept_by_nothing)
            FROM changed
            $q$ INTO rt, rk, rp, et, ek, ep USING t, k, p, id;
        IF rt IS NOT NULL THEN
            EXECUTE $q$
                UPDATE task_number_states s SET (last_call_id, last_call_time, last_outcome) = (
                    SELECT l.call_id, l.call_time, l.outcome FROM calls l
                    WHERE l.tenant_id = s.tenant_id AND l.task_id = s.task_id
                      AND l.callee = s.phone
                    ORDER BY l.call_time DESC, l.call_id DESC LIMIT 1)
                WHERE (s.tenant_id, s.task_id, s.phone) IN (SELECT * FROM unnest($1, $2, $3))
                $q$ USING rt, rk, rp;
        END IF;
        PERFORM number_states_delete(et, ek, ep);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN NULL;
    END IF;
    -- Arrivals: per number, the count of its calls in the statement and the
    -- latest of them, upserted in (task, phone) byte order (0017).
    EXECUTE format($q$
        INSERT INTO task_number_states AS s (tenant_id, task_id, phone, attempts,
            last_call_id, last_call_time, last_outcome)
        SELECT tenant_id, task_id, callee, attempts, call_id, call_time, outcome FROM (
            SELECT DISTINCT ON (tenant_id, task_id COLLATE "C", callee COLLATE "C")
                tenant_id, task_id, callee, call_id, call_time, outcome,
                COUNT(*) OVER (PARTITION BY tenant_id, task_id, callee) AS attempts
            FROM (%s) arrived
            ORDER BY tenant_id, task_id COLLATE "C", callee COLLATE "C",
                call_time DESC, call_id DESC) latest
        ORDER BY tenant_id, task_id COLLATE "C", callee COLLATE "C"
        ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
            attempts = s.attempts + excluded.attempts,
            last_outcome = CASE WHEN s.last_call_id IS NULL
                OR (excluded.last_call_time, excluded.last_call_id) > (s.last_call_time, s.last_call_id)
                THEN excluded.last_outcome ELSE s.last_outcome END,
            last_call_time = CASE WHEN s.last_call_id IS NULL
                OR (excluded.last_call_time, excluded.last_call_id) > (s.last_call_time, s.last_call_id)
                THEN excluded.last_call_time ELSE s.last_call_time END,
            last_call_id = CASE WHEN s.last_call_id IS NULL
                OR (excluded.last_call_time, excluded.last_call_id) > (s.last_call_time, s.last_call_id)
                THEN excluded.last_call_id ELSE s.last_call_id END
        $q$, number_states_rows_sql(TG_OP, 'arrived', compared));
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER calls_keep_number_state_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION calls_number_states_follow();
CREATE OR REPLACE TRIGGER calls_keep_number_state_delete AFTER DELETE ON calls
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION calls_number_states_follow();
CREATE OR REPLACE TRIGGER calls_keep_number_state_update AFTER UPDATE ON calls
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION calls_number_states_follow();
DROP FUNCTION calls_number_states_added();
DROP FUNCTION calls_keep_number_state();
DROP FUNCTION number_state_call_arrives(TEXT, TEXT, TEXT, TEXT, BIGINT, BIGINT);
DROP FUNCTION number_state_call_leaves(TEXT, TEXT, TEXT, TEXT);

-- The same for the three triggers of `task_numbers`: the numbers a
-- statement unlisted (deleted, or updated to another task or phone) first,
-- then those it listed or gave another vendor status.
CREATE FUNCTION task_numbers_states_follow() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    t TEXT[];
    k TEXT[];
    p TEXT[];
    -- States nothing keeps any more.
    et TEXT[];
    ek TEXT[];
    ep TEXT[];
BEGIN
    -- Compared on the key alone: a number still listed under its key (its
    -- vendor status changed) is not unlisted first, the upsert below sets
    -- its new status. A key is in a transition table once (the primary key
    -- of task_numbers).
    IF TG_OP <> 'INSERT' THEN
        EXECUTE 'SELECT array_agg(tenant_id), array_agg(task_id), array_agg(phone) FROM ('
            || number_states_rows_sql(TG_OP, 'left', 'tenant_id, task_id, phone') || ') x'
            INTO t, k, p;
    END IF;
    IF t IS NOT NULL THEN
        PERFORM number_states_lock(t, k, p);
        EXECUTE $q$
            WITH unlisted AS (
                UPDATE task_number_states s SET listed = 0, vendor_status_code = NULL
                WHERE (s.tenant_id, s.task_id, s.phone) IN (SELECT * FROM unnest($1, $2, $3))
                RETURNING s.tenant_id, s.task_id, s.phone, s.attempts <= 0 AS kept_by_nothing)
            SELECT array_agg(tenant_id) FILTER (WHERE kept_by_nothing),
                array_agg(task_id) FILTER (WHERE kept_by_nothing),
                array_agg(phone) FILTER (WHERE kept_by_nothing)
            FROM unlisted
            $q$ INTO et, ek, ep USING t, k, p;
        PERFORM number_states_delete(et, ek, ep);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN NULL;
    END IF;
    -- A key is in `added` once, so no state is upserted twice by one
    -- statement.
    EXECUTE format($q$
        INSERT INTO task_number_states (tenant_id, task_id, phone, listed, vendor_status_code)
        SELECT tenant_id, task_id, phone, 1, status_code FROM (%s) listed
        ORDER BY tenant_id, task_id COLLATE "C", phone COLLATE "C"
        ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
            listed = 1, vendor_status_code = excluded.vendor_status_code
        $q$, number_states_rows_sql(TG_OP, 'arrived', 'tenant_id, task_id, phone, status_code'));
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER task_numbers_keep_state_insert AFTER INSERT ON task_numbers
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION task_numbers_states_follow();
CREATE OR REPLACE TRIGGER task_numbers_keep_state_delete AFTER DELETE ON task_numbers
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION task_numbers_states_follow();
CREATE OR REPLACE TRIGGER task_numbers_keep_state_update AFTER UPDATE ON task_numbers
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION task_numbers_states_follow();
DROP FUNCTION task_numbers_keep_state();
