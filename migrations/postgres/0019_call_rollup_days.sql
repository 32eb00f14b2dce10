-- Day rollups (issue 14): the hour rollups of 0016 summed again per UTC day,
-- so a 30-day window reads 29 days' rows and the hours at its two edges,
-- instead of every row of 720 hours.
--
-- Kept from `call_rollups` itself: each statement that appends hour rows
-- (the call and tag triggers of 0016) appends their sum per day and key, so
-- for every key the rows of a day sum to the rows of its 24 hours. Folding
-- an hour (`call_rollups_fold`) deletes rows and inserts their sums, which
-- changes no day, so it marks its insert (`callscope.rollup_fold`, local to
-- the transaction) and the day trigger skips it. A day's rows are folded as
-- an hour's are, past 256 rows that repeat a key, under their own advisory
-- lock.
CREATE TABLE call_rollup_days (
    tenant_id   TEXT   NOT NULL,
    id          BIGINT GENERATED ALWAYS AS IDENTITY,
    task_id     TEXT   NOT NULL,
    -- Start of the UTC day, in ms.
    day         BIGINT NOT NULL,
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
CREATE INDEX call_rollup_days_by_task ON call_rollup_days (tenant_id, task_id, day);
CREATE INDEX call_rollup_days_by_day ON call_rollup_days (tenant_id, day);
ALTER TABLE call_rollup_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE call_rollup_days FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON call_rollup_days
    USING (tenant_id = current_setting('callscope.tenant', true))
    WITH CHECK (tenant_id = current_setting('callscope.tenant', true));

CREATE FUNCTION call_rollup_day(at BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$ SELECT at - ((at % 86400000) + 86400000) % 86400000 $$;

CREATE FUNCTION call_rollup_days_fold(t TEXT, k TEXT, d BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT COUNT(*) - COUNT(DISTINCT (dim, key, detail)) FROM call_rollup_days
            WHERE tenant_id = t AND task_id = k AND day = d) <= 256 THEN
        RETURN;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtextextended('call_rollup_days:' || t || ':' || k || ':' || d, 0)) THEN
        RETURN;
    END IF;
    WITH gone AS (
        DELETE FROM call_rollup_days WHERE tenant_id = t AND task_id = k AND day = d
        RETURNING dim, key, detail, calls, answered, talk_sum, ring_sum, rounds_sum,
            score_sum, score_count)
    INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT t, k, d, dim, key, detail, SUM(calls), SUM(answered), SUM(talk_sum), SUM(ring_sum),
        SUM(rounds_sum), SUM(score_sum), SUM(score_count)
    FROM gone GROUP BY dim, key, detail
    HAVING SUM(calls) <> 0 OR SUM(answered) <> 0 OR SUM(talk_sum) <> 0 OR SUM(ring_sum) <> 0
        OR SUM(rounds_sum) <> 0 OR SUM(score_sum) <> 0 OR SUM(score_count) <> 0;
END
$$;

-- A statement's appended hour rows, summed per day and key, then the days
-- it touched folded.
CREATE FUNCTION call_rollups_day_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched RECORD;
BEGIN
    IF current_setting('callscope.rollup_fold', true) = 'on' THEN
        RETURN NULL;
    END IF;
    FOR touched IN
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
        SELECT DISTINCT tenant_id, task_id, day FROM appended
    LOOP
        PERFORM call_rollup_days_fold(touched.tenant_id, touched.task_id, touched.day);
    END LOOP;
    RETURN NULL;
END
$$;
-- As for the other rollup triggers (0018): the set-based insert is
-- estimated past `jit_above_cost` on large batches, and compiling it never
-- pays back.
ALTER FUNCTION call_rollups_day_added() SET jit = off;

-- The hour fold (0016) as before, with its re-insert marked so that the day
-- trigger does not count the hour's figures twice.
CREATE OR REPLACE FUNCTION call_rollups_fold(t TEXT, k TEXT, h BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT COUNT(*) - COUNT(DISTINCT (dim, key, detail)) FROM call_rollups
            WHERE tenant_id = t AND task_id = k AND hour = h) <= 256 THEN
        RETURN;
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtextextended('call_rollups:' || t || ':' || k || ':' || h, 0)) THEN
        RETURN;
    END IF;
    PERFORM set_config('callscope.rollup_fold', 'on', true);
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
    PERFORM set_config('callscope.rollup_fold', 'off', true);
END
$$;

-- The trigger first: creating it locks `call_rollups` against writers until
-- the migration commits, so no hour row can be appended between the
-- backfill's snapshot and the trigger (servers of an older version may still
-- be writing while this one starts). The backfill writes only days, which
-- fires nothing.
CREATE TRIGGER call_rollups_day_insert AFTER INSERT ON call_rollups
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION call_rollups_day_added();

-- The days of what is stored already, tenant by tenant (row-level
-- security).
DO $$
DECLARE
    t TEXT;
BEGIN
    FOR t IN SELECT tenant_id FROM tenants ORDER BY tenant_id LOOP
        PERFORM set_config('callscope.tenant', t, true);
        INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
            talk_sum, ring_sum, rounds_sum, score_sum, score_count)
        SELECT tenant_id, task_id, call_rollup_day(hour), dim, key, detail, SUM(calls),
            SUM(answered), SUM(talk_sum), SUM(ring_sum), SUM(rounds_sum), SUM(score_sum),
            SUM(score_count)
        FROM call_rollups WHERE tenant_id = t
        GROUP BY tenant_id, task_id, call_rollup_day(hour), dim, key, detail
        HAVING SUM(calls) <> 0 OR SUM(answered) <> 0 OR SUM(talk_sum) <> 0
            OR SUM(ring_sum) <> 0 OR SUM(rounds_sum) <> 0 OR SUM(score_sum) <> 0
            OR SUM(score_count) <> 0;
    END LOOP;
    PERFORM set_config('callscope.tenant', '', true);
END
$$;
