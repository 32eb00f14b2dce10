-- Trigger plans that follow the tables as they grow (issue 14, ingest).
--
-- A static statement in PL/pgSQL without parameters is planned once per
-- connection and that plan is kept until the tables' definitions or
-- statistics change. With autovacuum off (this repository's test cluster)
-- a plan made while `calls` was empty would be kept at any size, so 0016
-- looked up each tag's call and each call's tags through PL/pgSQL
-- functions planned anew for every row: 20,000 calls with two tags each
-- spent about 60 % of their load time in those look-ups. Here the trigger
-- statements that read `calls` or `call_tags` run through EXECUTE, planned
-- once per statement with the tables' current sizes, and join instead of
-- calling a function per row.
--
-- The number states (0015) are kept the same way for inserts: one
-- set-based upsert per statement instead of a PL/pgSQL call per call row.

-- A call's tags, read by join in the statement that inlines this function.
CREATE OR REPLACE FUNCTION call_rollup_keys(c calls)
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
    UNION ALL SELECT 'tag', ct.tag_id, '', 1, 0, 0, 0, 0, 0, 0
        FROM call_tags ct WHERE ct.tenant_id = c.tenant_id AND ct.call_id = c.call_id
$$;

CREATE OR REPLACE FUNCTION calls_rollup_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    EXECUTE $sql$
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
        OR SUM(s * score_count) <> 0
    $sql$;
    FOR touched IN
        SELECT DISTINCT tenant_id, task_id, call_rollup_hour(call_time) AS hour FROM added
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION calls_rollup_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    EXECUTE $sql$
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
        OR SUM(s * score_count) <> 0
    $sql$;
    FOR touched IN
        SELECT DISTINCT tenant_id, task_id, call_rollup_hour(call_time) AS hour FROM removed
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION calls_rollup_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    EXECUTE $sql$
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
        OR SUM(s * score_count) <> 0
    $sql$;
    FOR touched IN
        SELECT tenant_id, task_id, call_rollup_hour(call_time) AS hour FROM added
        UNION SELECT tenant_id, task_id, call_rollup_hour(call_time) FROM removed
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION call_tags_rollup_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    FOR touched IN EXECUTE $sql$
        WITH appended AS (
            INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
            SELECT tenant_id, task_id, hour, 'tag', tag_id, '', SUM(s), 0, 0, 0, 0, 0, 0
            FROM (SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, x.tag_id, 1 AS s
            FROM added x JOIN calls c ON c.tenant_id = x.tenant_id AND c.call_id = x.call_id) d
            GROUP BY tenant_id, task_id, hour, tag_id HAVING SUM(s) <> 0
            RETURNING tenant_id, task_id, hour)
        SELECT DISTINCT tenant_id, task_id, hour FROM appended
    $sql$
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION call_tags_rollup_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    FOR touched IN EXECUTE $sql$
        WITH appended AS (
            INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
            SELECT tenant_id, task_id, hour, 'tag', tag_id, '', SUM(s), 0, 0, 0, 0, 0, 0
            FROM (SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, x.tag_id, -1 AS s
            FROM removed x JOIN calls c ON c.tenant_id = x.tenant_id AND c.call_id = x.call_id) d
            GROUP BY tenant_id, task_id, hour, tag_id HAVING SUM(s) <> 0
            RETURNING tenant_id, task_id, hour)
        SELECT DISTINCT tenant_id, task_id, hour FROM appended
    $sql$
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION call_tags_rollup_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    FOR touched IN EXECUTE $sql$
        WITH appended AS (
            INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
            SELECT tenant_id, task_id, hour, 'tag', tag_id, '', SUM(s), 0, 0, 0, 0, 0, 0
            FROM (SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, x.tag_id, 1 AS s
            FROM added x JOIN calls c ON c.tenant_id = x.tenant_id AND c.call_id = x.call_id
            UNION ALL SELECT x.tenant_id, c.task_id, call_rollup_hour(c.call_time) AS hour, x.tag_id, -1 AS s
            FROM removed x JOIN calls c ON c.tenant_id = x.tenant_id AND c.call_id = x.call_id) d
            GROUP BY tenant_id, task_id, hour, tag_id HAVING SUM(s) <> 0
            RETURNING tenant_id, task_id, hour)
        SELECT DISTINCT tenant_id, task_id, hour FROM appended
    $sql$
    LOOP
        PERFORM call_rollups_fold(touched.tenant_id, touched.task_id, touched.hour);
    END LOOP;
    RETURN NULL;
END
$$;

-- The look-ups 0016 called per row; nothing calls them now.
DROP FUNCTION call_rollup_call_of(TEXT, TEXT);
DROP FUNCTION call_rollup_tags_of(TEXT, TEXT);

-- Arriving calls update their numbers' states in one statement: per number,
-- the count of its calls in the statement and the latest of them. Rows go in
-- (task, phone) byte order, the order the store writes calls in, so
-- concurrent writers lock states in one order.
CREATE FUNCTION calls_number_states_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE $sql$
    INSERT INTO task_number_states AS s (tenant_id, task_id, phone, attempts,
        last_call_id, last_call_time, last_outcome)
    SELECT tenant_id, task_id, callee, attempts, call_id, call_time, outcome FROM (
        SELECT DISTINCT ON (tenant_id, task_id COLLATE "C", callee COLLATE "C")
            tenant_id, task_id, callee, call_id, call_time, outcome,
            COUNT(*) OVER (PARTITION BY tenant_id, task_id, callee) AS attempts
        FROM added WHERE task_id <> ''
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
    $sql$;
    RETURN NULL;
END
$$;

DROP TRIGGER calls_keep_number_state_insert ON calls;
CREATE TRIGGER calls_keep_number_state_insert AFTER INSERT ON calls
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION calls_number_states_added();
