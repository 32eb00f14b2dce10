-- Day rollups (issue 14): the figures of 0016's hour rollups kept again per
-- UTC day, so a 30-day window reads 29 days' rows per key and the hours at
-- its two edges, instead of the rows of 720 hours.
--
-- `call_rollup_days` has the shape of `call_rollups` with `day` (start of
-- the UTC day, in ms) in place of `hour`, and the same keys. Every trigger of
-- 0016 is replaced by one that writes both tiers, so for every key a day's
-- row is the sum of its 24 hours' rows. The replacements read a call's
-- figures from the row the trigger fired for (`new`, `old`) instead of
-- looking the call up again through the `call_rollup_keys` view: nine
-- primary-key look-ups fewer per call write. Measured with callgrind on the
-- sqlite3 shell, 5,000 calls of the stats benchmark and their tags inserted
-- in one transaction: 2,168 M instructions with 0016's triggers (hours
-- only), 3,249 M keeping days by triggers on `call_rollups` (every hour
-- upsert firing a day upsert), 2,511 M with these.
CREATE TABLE call_rollup_days (
    tenant_id   TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    -- Start of the call_time's UTC day, in ms.
    day         INTEGER NOT NULL,
    dim         TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    calls       INTEGER NOT NULL,
    answered    INTEGER NOT NULL,
    talk_sum    INTEGER NOT NULL,
    ring_sum    INTEGER NOT NULL,
    rounds_sum  INTEGER NOT NULL,
    score_sum   INTEGER NOT NULL,
    score_count INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, task_id, day, dim, key, detail)
) WITHOUT ROWID;
-- Stats over every task of a tenant.
CREATE INDEX call_rollup_days_by_day ON call_rollup_days (tenant_id, day);

DROP TRIGGER calls_rollup_insert;
DROP TRIGGER calls_rollup_delete;
DROP TRIGGER calls_rollup_update_out;
DROP TRIGGER calls_rollup_update_in;
DROP TRIGGER call_tags_rollup_insert;
DROP TRIGGER call_tags_rollup_delete;
DROP TRIGGER call_tags_rollup_update;

-- A call's contributions, as in 0016: its tags count while both exist (the
-- call's triggers add and remove the tags it has at that moment, the tags'
-- triggers those whose call exists).
CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT new.tenant_id, new.task_id, new.call_time - ((new.call_time % 3600000) + 3600000) % 3600000, k.*
    FROM (SELECT 'all' AS dim, '' AS key, '' AS detail, 1 AS calls,
            (CASE WHEN new.outcome = 1 THEN 1 ELSE 0 END) AS answered,
            (CASE WHEN new.outcome = 1 THEN new.talk_ms ELSE 0 END) AS talk_sum,
            new.ring_ms AS ring_sum, new.rounds AS rounds_sum,
            COALESCE(new.score, 0) AS score_sum,
            (CASE WHEN new.score IS NULL THEN 0 ELSE 1 END) AS score_count
        UNION ALL SELECT 'outcome', CAST(new.outcome AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'party', CAST(new.hangup_by AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'carrier', new.carrier, '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'province', new.province, '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'level', COALESCE(new.intent_level_id, ''), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'talk',
            CAST((new.talk_ms - ((new.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
            1, 0, 0, 0, 0, 0, 0 WHERE new.outcome = 1
        UNION ALL SELECT 'cost', new.currency, new.cost, 1, 0, 0, 0, 0, 0, 0 WHERE new.cost <> ''
        UNION ALL SELECT 'tag', ct.tag_id, '', 1, 0, 0, 0, 0, 0, 0 FROM call_tags ct
            WHERE ct.tenant_id = new.tenant_id AND ct.call_id = new.call_id) k
    WHERE true
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
    INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT new.tenant_id, new.task_id, new.call_time - ((new.call_time % 86400000) + 86400000) % 86400000, k.*
    FROM (SELECT 'all' AS dim, '' AS key, '' AS detail, 1 AS calls,
            (CASE WHEN new.outcome = 1 THEN 1 ELSE 0 END) AS answered,
            (CASE WHEN new.outcome = 1 THEN new.talk_ms ELSE 0 END) AS talk_sum,
            new.ring_ms AS ring_sum, new.rounds AS rounds_sum,
            COALESCE(new.score, 0) AS score_sum,
            (CASE WHEN new.score IS NULL THEN 0 ELSE 1 END) AS score_count
        UNION ALL SELECT 'outcome', CAST(new.outcome AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'party', CAST(new.hangup_by AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'carrier', new.carrier, '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'province', new.province, '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'level', COALESCE(new.intent_level_id, ''), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'talk',
            CAST((new.talk_ms - ((new.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
            1, 0, 0, 0, 0, 0, 0 WHERE new.outcome = 1
        UNION ALL SELECT 'cost', new.currency, new.cost, 1, 0, 0, 0, 0, 0, 0 WHERE new.cost <> ''
        UNION ALL SELECT 'tag', ct.tag_id, '', 1, 0, 0, 0, 0, 0, 0 FROM call_tags ct
            WHERE ct.tenant_id = new.tenant_id AND ct.call_id = new.call_id) k
    WHERE true
    ON CONFLICT (tenant_id, task_id, day, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
END;

CREATE TRIGGER calls_rollup_delete BEFORE DELETE ON calls
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT old.tenant_id, old.task_id, old.call_time - ((old.call_time % 3600000) + 3600000) % 3600000, k.*
    FROM (SELECT 'all' AS dim, '' AS key, '' AS detail, -1 AS calls,
            -(CASE WHEN old.outcome = 1 THEN 1 ELSE 0 END) AS answered,
            -(CASE WHEN old.outcome = 1 THEN old.talk_ms ELSE 0 END) AS talk_sum,
            -old.ring_ms AS ring_sum, -old.rounds AS rounds_sum,
            -COALESCE(old.score, 0) AS score_sum,
            -(CASE WHEN old.score IS NULL THEN 0 ELSE 1 END) AS score_count
        UNION ALL SELECT 'outcome', CAST(old.outcome AS TEXT), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'party', CAST(old.hangup_by AS TEXT), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'carrier', old.carrier, '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'province', old.province, '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'level', COALESCE(old.intent_level_id, ''), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'talk',
            CAST((old.talk_ms - ((old.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
            -1, 0, 0, 0, 0, 0, 0 WHERE old.outcome = 1
        UNION ALL SELECT 'cost', old.currency, old.cost, -1, 0, 0, 0, 0, 0, 0 WHERE old.cost <> ''
        UNION ALL SELECT 'tag', ct.tag_id, '', -1, 0, 0, 0, 0, 0, 0 FROM call_tags ct
            WHERE ct.tenant_id = old.tenant_id AND ct.call_id = old.call_id) k
    WHERE true
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
    INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT old.tenant_id, old.task_id, old.call_time - ((old.call_time % 86400000) + 86400000) % 86400000, k.*
    FROM (SELECT 'all' AS dim, '' AS key, '' AS detail, -1 AS calls,
            -(CASE WHEN old.outcome = 1 THEN 1 ELSE 0 END) AS answered,
            -(CASE WHEN old.outcome = 1 THEN old.talk_ms ELSE 0 END) AS talk_sum,
            -old.ring_ms AS ring_sum, -old.rounds AS rounds_sum,
            -COALESCE(old.score, 0) AS score_sum,
            -(CASE WHEN old.score IS NULL THEN 0 ELSE 1 END) AS score_count
        UNION ALL SELECT 'outcome', CAST(old.outcome AS TEXT), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'party', CAST(old.hangup_by AS TEXT), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'carrier', old.carrier, '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'province', old.province, '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'level', COALESCE(old.intent_level_id, ''), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'talk',
            CAST((old.talk_ms - ((old.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
            -1, 0, 0, 0, 0, 0, 0 WHERE old.outcome = 1
        UNION ALL SELECT 'cost', old.currency, old.cost, -1, 0, 0, 0, 0, 0, 0 WHERE old.cost <> ''
        UNION ALL SELECT 'tag', ct.tag_id, '', -1, 0, 0, 0, 0, 0, 0 FROM call_tags ct
            WHERE ct.tenant_id = old.tenant_id AND ct.call_id = old.call_id) k
    WHERE true
    ON CONFLICT (tenant_id, task_id, day, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
END;

-- An update moves the call's old contributions out before it and its new
-- ones in after it; rewrites of the same values touch nothing.
CREATE TRIGGER calls_rollup_update_out
BEFORE UPDATE OF tenant_id, call_id, task_id, call_time, outcome, talk_ms, ring_ms, rounds, score,
    hangup_by, carrier, province, intent_level_id, cost, currency ON calls
WHEN old.call_id IS NOT new.call_id OR old.task_id IS NOT new.task_id
  OR old.call_time IS NOT new.call_time OR old.outcome IS NOT new.outcome
  OR old.talk_ms IS NOT new.talk_ms OR old.ring_ms IS NOT new.ring_ms
  OR old.rounds IS NOT new.rounds OR old.score IS NOT new.score
  OR old.hangup_by IS NOT new.hangup_by OR old.carrier IS NOT new.carrier
  OR old.province IS NOT new.province OR old.intent_level_id IS NOT new.intent_level_id
  OR old.cost IS NOT new.cost OR old.currency IS NOT new.currency
  OR old.tenant_id IS NOT new.tenant_id
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT old.tenant_id, old.task_id, old.call_time - ((old.call_time % 3600000) + 3600000) % 3600000, k.*
    FROM (SELECT 'all' AS dim, '' AS key, '' AS detail, -1 AS calls,
            -(CASE WHEN old.outcome = 1 THEN 1 ELSE 0 END) AS answered,
            -(CASE WHEN old.outcome = 1 THEN old.talk_ms ELSE 0 END) AS talk_sum,
            -old.ring_ms AS ring_sum, -old.rounds AS rounds_sum,
            -COALESCE(old.score, 0) AS score_sum,
            -(CASE WHEN old.score IS NULL THEN 0 ELSE 1 END) AS score_count
        UNION ALL SELECT 'outcome', CAST(old.outcome AS TEXT), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'party', CAST(old.hangup_by AS TEXT), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'carrier', old.carrier, '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'province', old.province, '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'level', COALESCE(old.intent_level_id, ''), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'talk',
            CAST((old.talk_ms - ((old.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
            -1, 0, 0, 0, 0, 0, 0 WHERE old.outcome = 1
        UNION ALL SELECT 'cost', old.currency, old.cost, -1, 0, 0, 0, 0, 0, 0 WHERE old.cost <> ''
        UNION ALL SELECT 'tag', ct.tag_id, '', -1, 0, 0, 0, 0, 0, 0 FROM call_tags ct
            WHERE ct.tenant_id = old.tenant_id AND ct.call_id = old.call_id) k
    WHERE true
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
    INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT old.tenant_id, old.task_id, old.call_time - ((old.call_time % 86400000) + 86400000) % 86400000, k.*
    FROM (SELECT 'all' AS dim, '' AS key, '' AS detail, -1 AS calls,
            -(CASE WHEN old.outcome = 1 THEN 1 ELSE 0 END) AS answered,
            -(CASE WHEN old.outcome = 1 THEN old.talk_ms ELSE 0 END) AS talk_sum,
            -old.ring_ms AS ring_sum, -old.rounds AS rounds_sum,
            -COALESCE(old.score, 0) AS score_sum,
            -(CASE WHEN old.score IS NULL THEN 0 ELSE 1 END) AS score_count
        UNION ALL SELECT 'outcome', CAST(old.outcome AS TEXT), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'party', CAST(old.hangup_by AS TEXT), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'carrier', old.carrier, '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'province', old.province, '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'level', COALESCE(old.intent_level_id, ''), '', -1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'talk',
            CAST((old.talk_ms - ((old.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
            -1, 0, 0, 0, 0, 0, 0 WHERE old.outcome = 1
        UNION ALL SELECT 'cost', old.currency, old.cost, -1, 0, 0, 0, 0, 0, 0 WHERE old.cost <> ''
        UNION ALL SELECT 'tag', ct.tag_id, '', -1, 0, 0, 0, 0, 0, 0 FROM call_tags ct
            WHERE ct.tenant_id = old.tenant_id AND ct.call_id = old.call_id) k
    WHERE true
    ON CONFLICT (tenant_id, task_id, day, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
END;

CREATE TRIGGER calls_rollup_update_in
AFTER UPDATE OF tenant_id, call_id, task_id, call_time, outcome, talk_ms, ring_ms, rounds, score,
    hangup_by, carrier, province, intent_level_id, cost, currency ON calls
WHEN old.call_id IS NOT new.call_id OR old.task_id IS NOT new.task_id
  OR old.call_time IS NOT new.call_time OR old.outcome IS NOT new.outcome
  OR old.talk_ms IS NOT new.talk_ms OR old.ring_ms IS NOT new.ring_ms
  OR old.rounds IS NOT new.rounds OR old.score IS NOT new.score
  OR old.hangup_by IS NOT new.hangup_by OR old.carrier IS NOT new.carrier
  OR old.province IS NOT new.province OR old.intent_level_id IS NOT new.intent_level_id
  OR old.cost IS NOT new.cost OR old.currency IS NOT new.currency
  OR old.tenant_id IS NOT new.tenant_id
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT new.tenant_id, new.task_id, new.call_time - ((new.call_time % 3600000) + 3600000) % 3600000, k.*
    FROM (SELECT 'all' AS dim, '' AS key, '' AS detail, 1 AS calls,
            (CASE WHEN new.outcome = 1 THEN 1 ELSE 0 END) AS answered,
            (CASE WHEN new.outcome = 1 THEN new.talk_ms ELSE 0 END) AS talk_sum,
            new.ring_ms AS ring_sum, new.rounds AS rounds_sum,
            COALESCE(new.score, 0) AS score_sum,
            (CASE WHEN new.score IS NULL THEN 0 ELSE 1 END) AS score_count
        UNION ALL SELECT 'outcome', CAST(new.outcome AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'party', CAST(new.hangup_by AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'carrier', new.carrier, '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'province', new.province, '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'level', COALESCE(new.intent_level_id, ''), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'talk',
            CAST((new.talk_ms - ((new.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
            1, 0, 0, 0, 0, 0, 0 WHERE new.outcome = 1
        UNION ALL SELECT 'cost', new.currency, new.cost, 1, 0, 0, 0, 0, 0, 0 WHERE new.cost <> ''
        UNION ALL SELECT 'tag', ct.tag_id, '', 1, 0, 0, 0, 0, 0, 0 FROM call_tags ct
            WHERE ct.tenant_id = new.tenant_id AND ct.call_id = new.call_id) k
    WHERE true
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
    INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT new.tenant_id, new.task_id, new.call_time - ((new.call_time % 86400000) + 86400000) % 86400000, k.*
    FROM (SELECT 'all' AS dim, '' AS key, '' AS detail, 1 AS calls,
            (CASE WHEN new.outcome = 1 THEN 1 ELSE 0 END) AS answered,
            (CASE WHEN new.outcome = 1 THEN new.talk_ms ELSE 0 END) AS talk_sum,
            new.ring_ms AS ring_sum, new.rounds AS rounds_sum,
            COALESCE(new.score, 0) AS score_sum,
            (CASE WHEN new.score IS NULL THEN 0 ELSE 1 END) AS score_count
        UNION ALL SELECT 'outcome', CAST(new.outcome AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'party', CAST(new.hangup_by AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'carrier', new.carrier, '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'province', new.province, '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'level', COALESCE(new.intent_level_id, ''), '', 1, 0, 0, 0, 0, 0, 0
        UNION ALL SELECT 'talk',
            CAST((new.talk_ms - ((new.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
            1, 0, 0, 0, 0, 0, 0 WHERE new.outcome = 1
        UNION ALL SELECT 'cost', new.currency, new.cost, 1, 0, 0, 0, 0, 0, 0 WHERE new.cost <> ''
        UNION ALL SELECT 'tag', ct.tag_id, '', 1, 0, 0, 0, 0, 0, 0 FROM call_tags ct
            WHERE ct.tenant_id = new.tenant_id AND ct.call_id = new.call_id) k
    WHERE true
    ON CONFLICT (tenant_id, task_id, day, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
END;

CREATE TRIGGER call_tags_rollup_insert AFTER INSERT ON call_tags
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT c.tenant_id, c.task_id, c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
        'tag', new.tag_id, '', 1, 0, 0, 0, 0, 0, 0
    FROM calls c WHERE c.tenant_id = new.tenant_id AND c.call_id = new.call_id
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls;
    INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT c.tenant_id, c.task_id, c.call_time - ((c.call_time % 86400000) + 86400000) % 86400000,
        'tag', new.tag_id, '', 1, 0, 0, 0, 0, 0, 0
    FROM calls c WHERE c.tenant_id = new.tenant_id AND c.call_id = new.call_id
    ON CONFLICT (tenant_id, task_id, day, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls;
END;

CREATE TRIGGER call_tags_rollup_delete AFTER DELETE ON call_tags
BEGIN
    UPDATE call_rollups SET calls = calls - 1
    WHERE (tenant_id, task_id, hour, dim, key, detail) IN (
        SELECT c.tenant_id, c.task_id, c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
            'tag', old.tag_id, ''
        FROM calls c WHERE c.tenant_id = old.tenant_id AND c.call_id = old.call_id);
    UPDATE call_rollup_days SET calls = calls - 1
    WHERE (tenant_id, task_id, day, dim, key, detail) IN (
        SELECT c.tenant_id, c.task_id, c.call_time - ((c.call_time % 86400000) + 86400000) % 86400000,
            'tag', old.tag_id, ''
        FROM calls c WHERE c.tenant_id = old.tenant_id AND c.call_id = old.call_id);
END;

CREATE TRIGGER call_tags_rollup_update AFTER UPDATE OF tenant_id, call_id, tag_id ON call_tags
WHEN old.tenant_id IS NOT new.tenant_id OR old.call_id IS NOT new.call_id
  OR old.tag_id IS NOT new.tag_id
BEGIN
    UPDATE call_rollups SET calls = calls - 1
    WHERE (tenant_id, task_id, hour, dim, key, detail) IN (
        SELECT c.tenant_id, c.task_id, c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
            'tag', old.tag_id, ''
        FROM calls c WHERE c.tenant_id = old.tenant_id AND c.call_id = old.call_id);
    UPDATE call_rollup_days SET calls = calls - 1
    WHERE (tenant_id, task_id, day, dim, key, detail) IN (
        SELECT c.tenant_id, c.task_id, c.call_time - ((c.call_time % 86400000) + 86400000) % 86400000,
            'tag', old.tag_id, ''
        FROM calls c WHERE c.tenant_id = old.tenant_id AND c.call_id = old.call_id);
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT c.tenant_id, c.task_id, c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
        'tag', new.tag_id, '', 1, 0, 0, 0, 0, 0, 0
    FROM calls c WHERE c.tenant_id = new.tenant_id AND c.call_id = new.call_id
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls;
    INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT c.tenant_id, c.task_id, c.call_time - ((c.call_time % 86400000) + 86400000) % 86400000,
        'tag', new.tag_id, '', 1, 0, 0, 0, 0, 0, 0
    FROM calls c WHERE c.tenant_id = new.tenant_id AND c.call_id = new.call_id
    ON CONFLICT (tenant_id, task_id, day, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls;
END;

-- The days of what is stored already: the sums of its hours.
INSERT INTO call_rollup_days (tenant_id, task_id, day, dim, key, detail, calls, answered,
    talk_sum, ring_sum, rounds_sum, score_sum, score_count)
SELECT tenant_id, task_id, hour - ((hour % 86400000) + 86400000) % 86400000, dim, key, detail,
    SUM(calls), SUM(answered), SUM(talk_sum), SUM(ring_sum), SUM(rounds_sum), SUM(score_sum),
    SUM(score_count)
FROM call_rollups
GROUP BY tenant_id, task_id, hour - ((hour % 86400000) + 86400000) % 86400000, dim, key, detail;
