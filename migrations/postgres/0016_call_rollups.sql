-- Statistics rollups (issue 14): per tenant, task and UTC hour, the counts
-- and sums GetCallStats and GetCallTimeSeries need, kept by triggers in the
-- same transaction as the calls, so no write path can forget them.
--
-- Keys (dim, key, detail):
--   'all'       ''                : calls and every sum of CallStats;
--   'outcome'   outcome code      : calls;
--   'party'     hangup_by code    : calls;
--   'carrier', 'province'         : calls per text ('' when none);
--   'level'     level id          : calls ('' for none);
--   'tag'       tag id            : tag uses of the hour's calls;
--   'talk'      ⌊talk_ms / 10 s⌋ of answered calls: the histogram a
--               percentile's 10-second range is found in (the exact value is
--               then read from that range of calls_task_talk);
--   'cost'      currency, detail the cost text: calls, so the exact decimal
--               sum is the sum of each distinct cost × its calls.
-- Readers sum the rows of a key and skip zero counts.
--
-- As with task_call_counts (0015), a row per key updated by every call would
-- be a hot row that serialises concurrent ingest and deadlocks batches that
-- lock keys in different orders. So each statement on `calls` or
-- `call_tags` appends its net change per key (statement triggers over the
-- transition tables), and an hour's rows are folded into one per key by
-- whichever statement finds more than 256 surplus rows (rows beyond one per
-- key) and wins the hour's advisory lock.
CREATE TABLE call_rollups (
    tenant_id   TEXT   NOT NULL,
    id          BIGINT GENERATED ALWAYS AS IDENTITY,
    task_id     TEXT   NOT NULL,
    -- Start of the call_time's UTC hour, in ms.
    hour        BIGINT NOT NULL,
    dim         TEXT   NOT NULL,
    key         TEXT   NOT NULL,
    detail      TEXT   NOT NULL,
    calls       BIGINT NOT NULL,
    answered    BIGINT NOT NULL,
    talk_sum    BIGINT NOT NULL,
    ring_sum    BIGINT NOT NULL,
    rounds_sum  BIGINT NOT NULL,
    score_sum   BIGINT NOT NULL,
    score_count BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX call_rollups_by_task ON call_rollups (tenant_id, task_id, hour);
CREATE INDEX call_rollups_by_hour ON call_rollups (tenant_id, hour);
ALTER TABLE call_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE call_rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON call_rollups
    USING (tenant_id = current_setting('callscope.tenant', true))
    WITH CHECK (tenant_id = current_setting('callscope.tenant', true));

CREATE FUNCTION call_rollup_hour(at BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$ SELECT at - ((at % 3600000) + 3600000) % 3600000 $$;

-- Look-ups by key for the triggers, in PL/pgSQL so that each runs as its own
-- statement planned for a key look-up. Written as joins, the planner chose,
-- under row-level security and while `calls` had no statistics yet (a new
-- database, autovacuum off), an index on tenant_id alone and read every
-- call of the tenant per row: a 500-tag insert grew by 25 ms for every 500
-- calls stored, and a bulk load of 200,000 calls timed out.
CREATE FUNCTION call_rollup_call_of(t TEXT, id TEXT, OUT task_id TEXT, OUT call_time BIGINT)
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    SELECT c.task_id, c.call_time INTO task_id, call_time
    FROM calls c WHERE c.tenant_id = t AND c.call_id = id;
END
$$;

CREATE FUNCTION call_rollup_tags_of(t TEXT, id TEXT) RETURNS SETOF TEXT
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN QUERY SELECT ct.tag_id FROM call_tags ct WHERE ct.tenant_id = t AND ct.call_id = id;
END
$$;

-- One call's contributions. Its tags count while both exist: the call's
-- triggers add and remove the tags it has at that moment, the tags'
-- triggers those whose call exists, so either order of writes keeps it,
-- provided a call's tags are written under its row lock (the tag triggers
-- read the call without locking it; every write path upserts or locks the
-- call before its tags: upsert_rows before the children, load_calls
-- FOR UPDATE before deletes).
CREATE FUNCTION call_rollup_keys(c calls)
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
    UNION ALL SELECT 'tag', tag_id, '', 1, 0, 0, 0, 0, 0, 0
        FROM call_rollup_tags_of(c.tenant_id, c.call_id) AS tag_id
$$;

-- Folds an hour's rows into one per key once more than 256 of them repeat a
-- key (an hour may well hold more than 256 keys: counting rows alone would
-- fold it again on every statement), unless another transaction is folding
-- it. Rows appended meanwhile by uncommitted writers are not seen by the
-- DELETE and stay as they are.
CREATE FUNCTION call_rollups_fold(t TEXT, k TEXT, h BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT COUNT(*) - COUNT(DISTINCT (dim, key, detail)) FROM call_rollups
            WHERE tenant_id = t AND task_id = k AND hour = h) <= 256 THEN
        RETURN;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtextextended('call_rollups:' || t || ':' || k || ':' || h, 0)) THEN
        RETURN;
    END IF;
    WITH gone AS (
        DELETE FROM call_rollups WHERE tenant_id = t AND task_id = k AND hour = h
        RETURNING dim, key, detail, calls, answered, talk_sum, ring_sum, rounds_sum,
            score_sum, score_count)
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT t, k, h, dim, key, detail, SUM(calls), SUM(answered), SUM(talk_sum), SUM(ring_sum),
        SUM(rounds_sum), SUM(score_sum), SUM(score_count)
    FROM gone GROUP BY dim, key, detail
    HAVING SUM(calls) <> 0 OR SUM(answered) <> 0 OR SUM(talk_sum) <> 0 OR SUM(ring_sum) <> 0
        OR SUM(rounds_sum) <> 0 OR SUM(score_sum) <> 0 OR SUM(score_count) <> 0;
END
$$;

-- Each statement appends its rows' net change per key (1 for rows added,
-- -1 for rows removed), then folds the hours it touched.
CREATE FUNCTION calls_rollup_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT tenant_id, task_id, hour, dim, key, detail, SUM(s * calls), SUM(s * answered),
        SUM(s * talk_sum), SUM(s * ring_sum), SUM(s * rounds_sum), SUM(s * score_sum),
        SUM(s * score_count)
    FROM (SELECT x.tenant_id, x.task_id, call_rollup_hour(x.call_time) AS hour, r.*, 1 AS s
            FROM added x CROSS JOIN LATERAL call_rollup_keys(x) r) d
    GROUP BY tenant_id, task_id, hour, dim, key, detail
    HAVING SUM(s * calls) <> 0 OR SUM(s * answered) <> 0 OR SUM(s * talk_sum) <> 0
        OR SUM(s * ring_sum) <> 0 OR SUM(s * rounds_sum) <> 0 OR SUM(s * score_sum) <> 0
        OR SUM(s * score_count) <> 0;
    FOR touched IN
        SELECT DISTINCT tenant_id, task_id, call_rollup_hour(call_time) AS hour FROM added
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION calls_rollup_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT tenant_id, task_id, hour, dim, key, detail, SUM(s * calls), SUM(s * answered),
        SUM(s * talk_sum), SUM(s * ring_sum), SUM(s * rounds_sum), SUM(s * score_sum),
        SUM(s * score_count)
    FROM (SELECT x.tenant_id, x.task_id, call_rollup_hour(x.call_time) AS hour, r.*, -1 AS s
            FROM removed x CROSS JOIN LATERAL call_rollup_keys(x) r) d
    GROUP BY tenant_id, task_id, hour, dim, key, detail
    HAVING SUM(s * calls) <> 0 OR SUM(s * answered) <> 0 OR SUM(s * talk_sum) <> 0
        OR SUM(s * ring_sum) <> 0 OR SUM(s * rounds_sum) <> 0 OR SUM(s * score_sum) <> 0
        OR SUM(s * score_count) <> 0;
    FOR touched IN
        SELECT DISTINCT tenant_id, task_id, call_rollup_hour(call_time) AS hour FROM removed
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

-- Rewrites that change no figure cancel out and append nothing.
CREATE FUNCTION calls_rollup_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT tenant_id, task_id, hour, dim, key, detail, SUM(s * calls), SUM(s * answered),
        SUM(s * talk_sum), SUM(s * ring_sum), SUM(s * rounds_sum), SUM(s * score_sum),
        SUM(s * score_count)
    FROM (SELECT x.tenant_id, x.task_id, call_rollup_hour(x.call_time) AS hour, r.*, 1 AS s
            FROM added x CROSS JOIN LATERAL call_rollup_keys(x) r
            UNION ALL SELECT x.tenant_id, x.task_id, call_rollup_hour(x.call_time) AS hour, r.*, -1 AS s
            FROM removed x CROSS JOIN LATERAL call_rollup_keys(x) r) d
    GROUP BY tenant_id, task_id, hour, dim, key, detail
    HAVING SUM(s * calls) <> 0 OR SUM(s * answered) <> 0 OR SUM(s * talk_sum) <> 0
        OR SUM(s * ring_sum) <> 0 OR SUM(s * rounds_sum) <> 0 OR SUM(s * score_sum) <> 0
        OR SUM(s * score_count) <> 0;
    FOR touched IN
        SELECT tenant_id, task_id, call_rollup_hour(call_time) AS hour FROM added
        UNION SELECT tenant_id, task_id, call_rollup_hour(call_time) FROM removed
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION call_tags_rollup_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    FOR touched IN
        WITH appended AS (
            INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
            SELECT tenant_id, task_id, hour, 'tag', tag_id, '', SUM(s), 0, 0, 0, 0, 0, 0
            FROM (SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, x.tag_id, 1 AS s
            FROM added x CROSS JOIN LATERAL call_rollup_call_of(x.tenant_id, x.call_id) c
            WHERE c.call_time IS NOT NULL) d
            GROUP BY tenant_id, task_id, hour, tag_id HAVING SUM(s) <> 0
            RETURNING tenant_id, task_id, hour)
        SELECT DISTINCT tenant_id, task_id, hour FROM appended
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION call_tags_rollup_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    FOR touched IN
        WITH appended AS (
            INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
            SELECT tenant_id, task_id, hour, 'tag', tag_id, '', SUM(s), 0, 0, 0, 0, 0, 0
            FROM (SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, x.tag_id, -1 AS s
            FROM removed x CROSS JOIN LATERAL call_rollup_call_of(x.tenant_id, x.call_id) c
            WHERE c.call_time IS NOT NULL) d
            GROUP BY tenant_id, task_id, hour, tag_id HAVING SUM(s) <> 0
            RETURNING tenant_id, task_id, hour)
        SELECT DISTINCT tenant_id, task_id, hour FROM appended
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION call_tags_rollup_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    FOR touched IN
        WITH appended AS (
            INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
            SELECT tenant_id, task_id, hour, 'tag', tag_id, '', SUM(s), 0, 0, 0, 0, 0, 0
            FROM (SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, x.tag_id, 1 AS s
            FROM added x CROSS JOIN LATERAL call_rollup_call_of(x.tenant_id, x.call_id) c
            WHERE c.call_time IS NOT NULL
            UNION ALL SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, x.tag_id, -1 AS s
            FROM removed x CROSS JOIN LATERAL call_rollup_call_of(x.tenant_id, x.call_id) c
            WHERE c.call_time IS NOT NULL) d
            GROUP BY tenant_id, task_id, hour, tag_id HAVING SUM(s) <> 0
            RETURNING tenant_id, task_id, hour)
        SELECT DISTINCT tenant_id, task_id, hour FROM appended
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION calls_rollup_added();
CREATE TRIGGER calls_rollup_delete AFTER DELETE ON calls
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION calls_rollup_removed();
CREATE TRIGGER calls_rollup_update AFTER UPDATE ON calls
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION calls_rollup_changed();
CREATE TRIGGER call_tags_rollup_insert AFTER INSERT ON call_tags
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION call_tags_rollup_added();
CREATE TRIGGER call_tags_rollup_delete AFTER DELETE ON call_tags
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION call_tags_rollup_removed();
CREATE TRIGGER call_tags_rollup_update AFTER UPDATE ON call_tags
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION call_tags_rollup_changed();

-- The rollups of what is stored already, tenant by tenant: under row-level
-- security each tenant's rows are visible only with its setting.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOR t IN SELECT tenant_id FROM tenants ORDER BY tenant_id LOOP
        PERFORM set_config('callscope.tenant', t, true);
        INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
            talk_sum, ring_sum, rounds_sum, score_sum, score_count)
        SELECT c.tenant_id, c.task_id, call_rollup_hour(c.call_time), r.dim, r.key, r.detail,
            SUM(r.calls), SUM(r.answered), SUM(r.talk_sum), SUM(r.ring_sum), SUM(r.rounds_sum),
            SUM(r.score_sum), SUM(r.score_count)
        FROM calls c CROSS JOIN LATERAL call_rollup_keys(c) r
        WHERE c.tenant_id = t
        GROUP BY c.tenant_id, c.task_id, call_rollup_hour(c.call_time), r.dim, r.key, r.detail;
    END LOOP;
    PERFORM set_config('callscope.tenant', '', true);
END
$$;
