-- Statistics rollups (issue 14): per tenant, task and UTC hour, the counts
-- and sums GetCallStats and GetCallTimeSeries need, kept by triggers in the
-- same transaction as the calls, so no write path can forget them.
--
-- One row per (tenant, task, hour, dim, key, detail):
--   dim 'all'       key ''            : calls and every sum of CallStats;
--   dim 'outcome'   key outcome code  : calls;
--   dim 'party'     key hangup_by code: calls;
--   dim 'carrier', 'province'         : calls per text ('' when none);
--   dim 'level'     key level id      : calls ('' for none);
--   dim 'tag'       key tag id        : tag uses of the hour's calls;
--   dim 'talk'      key ⌊talk_ms / 10 s⌋ of answered calls: the histogram a
--                   percentile's 10-second range is found in (the exact
--                   value is then read from that range of calls_task_talk);
--   dim 'cost'      key currency, detail the cost text: calls, so the exact
--                   decimal sum is the sum of each distinct cost × its calls.
-- Rows whose counts fall to zero stay; readers skip zero counts.
--
-- SQLite has one writer at a time, so one row per key, kept by row triggers,
-- costs no concurrency.
CREATE TABLE call_rollups (
    tenant_id   TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    -- Start of the call_time's UTC hour, in ms.
    hour        INTEGER NOT NULL,
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
    PRIMARY KEY (tenant_id, task_id, hour, dim, key, detail)
) WITHOUT ROWID;
-- Stats over every task of a tenant.
CREATE INDEX call_rollups_by_hour ON call_rollups (tenant_id, hour);

-- Each call's rollup contributions, read by the triggers for one call (its
-- primary key) and by the backfill below for all.
CREATE VIEW call_rollup_keys AS
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000 AS hour,
       'all' AS dim, '' AS key, '' AS detail, 1 AS calls,
       CASE WHEN c.outcome = 1 THEN 1 ELSE 0 END AS answered,
       CASE WHEN c.outcome = 1 THEN c.talk_ms ELSE 0 END AS talk_sum,
       c.ring_ms AS ring_sum, c.rounds AS rounds_sum, COALESCE(c.score, 0) AS score_sum,
       CASE WHEN c.score IS NULL THEN 0 ELSE 1 END AS score_count
FROM calls c
UNION ALL
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
       'outcome', CAST(c.outcome AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
FROM calls c
UNION ALL
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
       'party', CAST(c.hangup_by AS TEXT), '', 1, 0, 0, 0, 0, 0, 0
FROM calls c
UNION ALL
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
       'carrier', c.carrier, '', 1, 0, 0, 0, 0, 0, 0
FROM calls c
UNION ALL
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
       'province', c.province, '', 1, 0, 0, 0, 0, 0, 0
FROM calls c
UNION ALL
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
       'level', COALESCE(c.intent_level_id, ''), '', 1, 0, 0, 0, 0, 0, 0
FROM calls c
UNION ALL
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
       'talk', CAST((c.talk_ms - ((c.talk_ms % 10000) + 10000) % 10000) / 10000 AS TEXT), '',
       1, 0, 0, 0, 0, 0, 0
FROM calls c WHERE c.outcome = 1
UNION ALL
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
       'cost', c.currency, c.cost, 1, 0, 0, 0, 0, 0, 0
FROM calls c WHERE c.cost <> ''
UNION ALL
SELECT c.tenant_id, c.call_id, c.task_id,
       c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
       'tag', ct.tag_id, '', 1, 0, 0, 0, 0, 0, 0
FROM calls c JOIN call_tags ct ON ct.tenant_id = c.tenant_id AND ct.call_id = c.call_id;

-- A call's tags count in its rollups while both exist: the call's triggers
-- add and remove the tags it has at that moment, the tags' triggers those
-- whose call exists, so either order of writes keeps the invariant.
CREATE TRIGGER calls_rollup_insert AFTER INSERT ON calls
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count
    FROM call_rollup_keys WHERE tenant_id = new.tenant_id AND call_id = new.call_id
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
END;

CREATE TRIGGER calls_rollup_delete BEFORE DELETE ON calls
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT tenant_id, task_id, hour, dim, key, detail, -calls, -answered,
        -talk_sum, -ring_sum, -rounds_sum, -score_sum, -score_count
    FROM call_rollup_keys WHERE tenant_id = old.tenant_id AND call_id = old.call_id
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
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
    SELECT tenant_id, task_id, hour, dim, key, detail, -calls, -answered,
        -talk_sum, -ring_sum, -rounds_sum, -score_sum, -score_count
    FROM call_rollup_keys WHERE tenant_id = old.tenant_id AND call_id = old.call_id
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
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
    SELECT tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count
    FROM call_rollup_keys WHERE tenant_id = new.tenant_id AND call_id = new.call_id
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls, answered = answered + excluded.answered,
        talk_sum = talk_sum + excluded.talk_sum, ring_sum = ring_sum + excluded.ring_sum,
        rounds_sum = rounds_sum + excluded.rounds_sum, score_sum = score_sum + excluded.score_sum,
        score_count = score_count + excluded.score_count;
END;

CREATE TRIGGER call_tags_rollup_insert AFTER INSERT ON call_tags
BEGIN
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT c.tenant_id, c.task_id,
        c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
        'tag', new.tag_id, '', 1, 0, 0, 0, 0, 0, 0
    FROM calls c WHERE c.tenant_id = new.tenant_id AND c.call_id = new.call_id
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls;
END;

CREATE TRIGGER call_tags_rollup_delete AFTER DELETE ON call_tags
BEGIN
    UPDATE call_rollups SET calls = calls - 1
    WHERE (tenant_id, task_id, hour, dim, key, detail) IN (
        SELECT c.tenant_id, c.task_id,
            c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000, 'tag', old.tag_id, ''
        FROM calls c WHERE c.tenant_id = old.tenant_id AND c.call_id = old.call_id);
END;

CREATE TRIGGER call_tags_rollup_update AFTER UPDATE OF tenant_id, call_id, tag_id ON call_tags
WHEN old.tenant_id IS NOT new.tenant_id OR old.call_id IS NOT new.call_id
  OR old.tag_id IS NOT new.tag_id
BEGIN
    UPDATE call_rollups SET calls = calls - 1
    WHERE (tenant_id, task_id, hour, dim, key, detail) IN (
        SELECT c.tenant_id, c.task_id,
            c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000, 'tag', old.tag_id, ''
        FROM calls c WHERE c.tenant_id = old.tenant_id AND c.call_id = old.call_id);
    INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
        talk_sum, ring_sum, rounds_sum, score_sum, score_count)
    SELECT c.tenant_id, c.task_id,
        c.call_time - ((c.call_time % 3600000) + 3600000) % 3600000,
        'tag', new.tag_id, '', 1, 0, 0, 0, 0, 0, 0
    FROM calls c WHERE c.tenant_id = new.tenant_id AND c.call_id = new.call_id
    ON CONFLICT (tenant_id, task_id, hour, dim, key, detail) DO UPDATE SET
        calls = calls + excluded.calls;
END;

-- The rollups of what is stored already.
INSERT INTO call_rollups (tenant_id, task_id, hour, dim, key, detail, calls, answered,
    talk_sum, ring_sum, rounds_sum, score_sum, score_count)
SELECT tenant_id, task_id, hour, dim, key, detail, SUM(calls), SUM(answered), SUM(talk_sum),
    SUM(ring_sum), SUM(rounds_sum), SUM(score_sum), SUM(score_count)
FROM call_rollup_keys GROUP BY tenant_id, task_id, hour, dim, key, detail;
