-- Set-based look-ups in the rollup and count triggers (issue 14).
--
-- The triggers of 0015, 0016 and 0019 ran statements per row and per key: a
-- PL/pgSQL look-up of its call for each tag row (`call_rollup_call_of`), of
-- its tags for each call row (`call_rollup_tags_of`), and a fold check for
-- each task, hour and day a statement touched. pg_stat_statements
-- (`track = all`) at 40,000 calls through UpsertCalls counted 44,147 call
-- look-ups, 40,000 tag look-ups and 63,169 fold checks, and each plan was
-- wrong one way or the other:
--
-- - The store's write connections plan with `plan_cache_mode =
--   force_custom_plan` (`WRITE_SETTINGS` in src/store/dialect.rs), which the
--   statements inside a function inherit: every look-up and check was
--   planned anew, about 9.7 s of planning in those 40,000 calls.
-- - A connection with PostgreSQL's default caches a generic plan after five
--   executions. Made while `calls` was small, the call look-up's plan was
--   an index scan of `calls_by_sync_time` on `tenant_id` alone, filtering
--   `call_id` (auto_explain, 773 of 781 logged look-ups): it reads the
--   tenant's calls until it meets the one it wants, and nothing re-plans it
--   until an ANALYZE. The fold checks' generic plans walked the tenant's
--   hour across all tasks (`call_rollups_by_hour`). The COPY baseline of the
--   benchmark, which fires the same triggers, ran these.
--
-- Now each trigger runs a few statements per statement it follows, whatever
-- the batch: the call's columns for tag rows and the tags of call rows come
-- from joins of the transition table with `calls` or `call_tags`, and the
-- fold checks of all the touched keys are one statement, after which only
-- the keys over their threshold are folded (each fold checks again under its
-- lock, as before). Statements that read a stored table run through EXECUTE,
-- so they are planned for this statement's rows and the tables' current
-- size (a join of 500 rows with `calls` probes its primary key; a join with
-- an empty table may scan it), never from a plan cached while the table was
-- another size; planning them costs a few per batch instead of one per row.
-- The day trigger's statements read the transition table alone, whose plans
-- depend on no stored table, and stay static.
--
-- The six rollup triggers of `calls` and `call_tags` now share one function,
-- which builds its statement from the trigger's table and operation, and so
-- do the three count triggers (CREATE OR REPLACE TRIGGER: a lock that
-- keeps writers out while the migration runs, not readers). What they write is unchanged, but for the
-- folds: only the keys a statement appended to are checked (a key it did
-- not append to gained no row). The fold functions are unchanged.

-- The keys of a call but its tags; the tag keys are joined in by the caller.
CREATE FUNCTION call_rollup_call_keys(c calls)
RETURNS TABLE (dim TEXT, key TEXT, detail TEXT, calls BIGINT, answered BIGINT, talk_sum BIGINT,
    ring_sum BIGINT, rounds_sum BIGINT, score_sum BIGINT, score_count BIGINT)
LANGUAGE sql STABLE AS $$
    SELECT 'all', '', '', 1::BIGINT, CASE WHEN c.outcome = 1 THEN 1 ELSE 0 END::BIGINT,
        CASE WHEN c.outcome = 1 THEN c.talk_ms ELSE 0 END, c.ring_ms, c.rounds,
        COALESCE(c.score, 0), CASE WHEN c.score IS NULL THEN 0 ELSE 1 END::BIGINT
    UNION ALL SELECT 'outcome', c.outcome::TEXT, '', 1, 0, 0, 0, 0, 0, 0
    UNION ALL SELECT 'party', c.hangup_by::TEXT, '', 1, 0, 0, 0, 0, 0, 0
    UNION ALL SELECT 'carrier', c.carrier, '', 1, 0, 0, 0, 0, 0, 0
    UNION ALL SELECT 'province', c.province, '', 1, 0, 0, 0, 0, 0, 0
    UNION ALL SELECT 'level', COALESCE(c.intent_level_id, ''), '', 1, 0, 0, 0, 0, 0, 0
    UNION ALL SELECT 'talk', ((c.talk_ms - ((c.talk_ms % 10000) + 10000) % 10000) / 10000)::TEXT,
        '', 1, 0, 0, 0, 0, 0, 0 WHERE c.outcome = 1
    UNION ALL SELECT 'cost', c.currency, c.cost, 1, 0, 0, 0, 0, 0, 0 WHERE c.cost <> ''
$$;

-- Folds the touched hours (tenant, task, hour: arrays of one length) whose
-- rows repeat a key more than 256 times, the check of `call_rollups_fold`
-- made for all of them in one statement.
CREATE FUNCTION call_rollups_fold_touched(t TEXT[], k TEXT[], h BIGINT[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    -- A statement that appended nothing.
    IF t IS NULL THEN
        RETURN;
    END IF;
    FOR touched IN EXECUTE $q$
        SELECT x.t, x.k, x.h FROM unnest($1, $2, $3) AS x(t, k, h)
        WHERE (SELECT COUNT(*) - COUNT(DISTINCT (r.dim, r.key, r.detail)) FROM call_rollups r
               WHERE r.tenant_id = x.t AND r.task_id = x.k AND r.hour = x.h) > 256
        $q$ USING t, k, h
    LOOP
        PERFORM call_rollups_fold(touched.t, touched.k, touched.h);
    END LOOP;
END
$$;

-- The same for the days (0019).
CREATE FUNCTION call_rollup_days_fold_touched(t TEXT[], k TEXT[], d BIGINT[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    -- A statement that appended nothing.
    IF t IS NULL THEN
        RETURN;
    END IF;
    FOR touched IN EXECUTE $q$
        SELECT x.t, x.k, x.d FROM unnest($1, $2, $3) AS x(t, k, d)
        WHERE (SELECT COUNT(*) - COUNT(DISTINCT (r.dim, r.key, r.detail)) FROM call_rollup_days r
               WHERE r.tenant_id = x.t AND r.task_id = x.k AND r.day = x.d) > 256
        $q$ USING t, k, d
    LOOP
        PERFORM call_rollup_days_fold(touched.t, touched.k, touched.d);
    END LOOP;
END
$$;

-- The same for the tasks' call counts (0015), over 1,024 rows.
CREATE FUNCTION task_call_counts_fold_touched(t TEXT[], k TEXT[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    -- A statement that appended nothing.
    IF t IS NULL THEN
        RETURN;
    END IF;
    FOR touched IN EXECUTE $q$
        SELECT x.t, x.k FROM unnest($1, $2) AS x(t, k)
        WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM task_call_counts c
               WHERE c.tenant_id = x.t AND c.task_id = x.k LIMIT 1025) r) > 1024
        $q$ USING t, k
    LOOP
        PERFORM task_call_counts_fold(touched.t, touched.k);
    END LOOP;
END
$$;

-- The rows of one transition table's change to `call_rollups`, one per key,
-- with their sign (`added` +1, `removed` -1): for `calls`, each call's keys
-- and its tags' (joined from `call_tags`); for `call_tags`, each tag row's
-- key under its call's task and hour while the call exists (joined from
-- `calls`, read without locking it, as in 0016: every write path holds the
-- call's row before writing its tags).
CREATE FUNCTION call_rollups_rows_sql(tbl TEXT, source TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE tbl
        WHEN 'calls' THEN format($f$
            SELECT x.tenant_id, x.task_id, call_rollup_hour(x.call_time) AS hour, r.*, %2$s AS s
            FROM %1$I x CROSS JOIN LATERAL call_rollup_call_keys(x) r
            UNION ALL
            SELECT x.tenant_id, x.task_id, call_rollup_hour(x.call_time), 'tag', ct.tag_id, '',
                1, 0, 0, 0, 0, 0, 0, %2$s
            FROM %1$I x JOIN call_tags ct ON ct.tenant_id = x.tenant_id AND ct.call_id = x.call_id
            $f$, source, CASE source WHEN 'added' THEN 1 ELSE -1 END)
        WHEN 'call_tags' THEN format($f$
            SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, 'tag' AS dim,
                x.tag_id AS key, '' AS detail, 1 AS calls, 0 AS answered, 0 AS talk_sum,
                0 AS ring_sum, 0 AS rounds_sum, 0 AS score_sum, 0 AS score_count, %2$s AS s
            FROM %1$I x JOIN calls c ON c.tenant_id = x.tenant_id AND c.call_id = x.call_id
            $f$, source, CASE source WHEN 'added' THEN 1 ELSE -1 END)
    END
$$;

-- The statement that appends a statement's net change per key (rewrites
-- that change no figure cancel out and append nothing) and answers the
-- hours it appended to, as arrays of tenants, tasks and hours.
CREATE FUNCTION call_rollups_append_sql(tbl TEXT, sources TEXT[]) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT format($f$
        WITH appended AS (
            INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
                talk_sum, ring_sum, rounds_sum, score_sum, score_count)
            SELECT tenant_id, task_id, hour, dim, key, detail, SUM(s * calls), SUM(s * answered),
                SUM(s * talk_sum), SUM(s * ring_sum), SUM(s * rounds_sum), SUM(s * score_sum),
                SUM(s * score_count)
            FROM (%s) d
            GROUP BY tenant_id, task_id, hour, dim, key, detail
            HAVING SUM(s * calls) <> 0 OR SUM(s * answered) <> 0 OR SUM(s * talk_sum) <> 0
                OR SUM(s * ring_sum) <> 0 OR SUM(s * rounds_sum) <> 0 OR SUM(s * score_sum) <> 0
                OR SUM(s * score_count) <> 0
            RETURNING tenant_id, task_id, hour)
        SELECT array_agg(tenant_id), array_agg(task_id), array_agg(hour)
        FROM (SELECT DISTINCT tenant_id, task_id, hour FROM appended) x
        $f$,
        (SELECT string_agg(call_rollups_rows_sql(tbl, source), ' UNION ALL ')
         FROM unnest(sources) AS source))
$$;

-- The transition tables a trigger of `TG_OP` has.
CREATE FUNCTION trigger_sources(op TEXT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE op WHEN 'INSERT' THEN '{added}'::TEXT[] WHEN 'DELETE' THEN '{removed}'::TEXT[]
        ELSE '{added,removed}'::TEXT[] END
$$;

-- One trigger function for the six rollup triggers on `calls` and
-- `call_tags` (0016), then the folds of the hours appended to.
CREATE FUNCTION call_rollups_follow() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    t TEXT[];
    k TEXT[];
    h BIGINT[];
BEGIN
    EXECUTE call_rollups_append_sql(TG_TABLE_NAME, trigger_sources(TG_OP)) INTO t, k, h;
    PERFORM call_rollups_fold_touched(t, k, h);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER calls_rollup_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION call_rollups_follow();
CREATE OR REPLACE TRIGGER calls_rollup_delete AFTER DELETE ON calls
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION call_rollups_follow();
CREATE OR REPLACE TRIGGER calls_rollup_update AFTER UPDATE ON calls
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION call_rollups_follow();
CREATE OR REPLACE TRIGGER call_tags_rollup_insert AFTER INSERT ON call_tags
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION call_rollups_follow();
CREATE OR REPLACE TRIGGER call_tags_rollup_delete AFTER DELETE ON call_tags
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION call_rollups_follow();
CREATE OR REPLACE TRIGGER call_tags_rollup_update AFTER UPDATE ON call_tags
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION call_rollups_follow();
DROP FUNCTION calls_rollup_added();
DROP FUNCTION calls_rollup_removed();
DROP FUNCTION calls_rollup_changed();
DROP FUNCTION call_tags_rollup_added();
DROP FUNCTION call_tags_rollup_removed();
DROP FUNCTION call_tags_rollup_changed();

-- Days (0019): a statement's appended hour rows summed per day and key, then
-- the days it touched folded.
CREATE OR REPLACE FUNCTION call_rollups_day_added() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    t TEXT[];
    k TEXT[];
    d BIGINT[];
BEGIN
    IF current_setting('callscope.rollup_fold', true) = 'on' THEN
        RETURN NULL;
    END IF;
    WITH appended AS (
        INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls,
            answered, talk_sum, ring_sum, rounds_sum, score_sum, score_count)
        SELECT tenant_id, task_id, call_rollup_day(hour), dim, key, detail, SUM(calls),
            SUM(answered), SUM(talk_sum), SUM(ring_sum), SUM(rounds_sum), SUM(score_sum),
            SUM(score_count)
        FROM added
        GROUP BY tenant_id, task_id, call_rollup_day(hour), dim, key, detail
        HAVING SUM(calls) <> 0 OR SUM(answered) <> 0 OR SUM(talk_sum) <> 0
            OR SUM(ring_sum) <> 0 OR SUM(rounds_sum) <> 0 OR SUM(score_sum) <> 0
            OR SUM(score_count) <> 0
        RETURNING tenant_id, task_id, day)
    SELECT array_agg(tenant_id), array_agg(task_id), array_agg(day) INTO t, k, d
    FROM (SELECT DISTINCT tenant_id, task_id, day FROM appended) x;
    PERFORM call_rollup_days_fold_touched(t, k, d);
    RETURN NULL;
END
$$;

-- Task counts (0015): one trigger function for the three triggers on
-- `calls`, appending each statement's net change per key, then the folds of
-- the tasks appended to.
CREATE FUNCTION task_call_counts_follow() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    t TEXT[];
    k TEXT[];
BEGIN
    EXECUTE format($f$
        WITH appended AS (
            INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
            SELECT tenant_id, task_id, level, outcome, SUM(n) FROM (%s) d
            GROUP BY tenant_id, task_id, level, outcome HAVING SUM(n) <> 0
            RETURNING tenant_id, task_id)
        SELECT array_agg(tenant_id), array_agg(task_id)
        FROM (SELECT DISTINCT tenant_id, task_id FROM appended) x
        $f$,
        (SELECT string_agg(format(
            'SELECT tenant_id, task_id, COALESCE(intent_level_id, %L) AS level, outcome, %s AS n '
            'FROM %I WHERE task_id <> %L',
            '', CASE source WHEN 'added' THEN 1 ELSE -1 END, source, ''), ' UNION ALL ')
         FROM unnest(trigger_sources(TG_OP)) AS source)) INTO t, k;
    PERFORM task_call_counts_fold_touched(t, k);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER calls_count_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION task_call_counts_follow();
CREATE OR REPLACE TRIGGER calls_count_delete AFTER DELETE ON calls
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION task_call_counts_follow();
CREATE OR REPLACE TRIGGER calls_count_update AFTER UPDATE ON calls
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION task_call_counts_follow();
DROP FUNCTION calls_count_added();
DROP FUNCTION calls_count_removed();
DROP FUNCTION calls_count_changed();

-- The per-row look-ups have no caller left.
DROP FUNCTION call_rollup_keys(calls);
DROP FUNCTION call_rollup_call_of(TEXT, TEXT);
DROP FUNCTION call_rollup_tags_of(TEXT, TEXT);
