-- The dialing lists of tasks, and the indexes campaign analytics reads through.

-- A number of a task: uploaded by a CRM (UpsertTaskNumbers) or imported from
-- a vendor's number list. Numbers that only appear in calls are not copied
-- here: ListTaskNumbers finds them in `calls` at query time, so the call
-- write path stays as it is.
CREATE TABLE task_numbers (
    tenant_id   TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    -- Normalised (E.164 when it parses), compared with calls.callee.
    phone       TEXT    NOT NULL,
    phone_raw   TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL DEFAULT '',
    attributes  TEXT    NOT NULL DEFAULT '{}',
    province    TEXT    NOT NULL DEFAULT '',
    city        TEXT    NOT NULL DEFAULT '',
    area_code   TEXT    NOT NULL DEFAULT '',
    carrier     TEXT    NOT NULL DEFAULT '',
    region      TEXT    NOT NULL DEFAULT '',
    post_code   TEXT    NOT NULL DEFAULT '',
    -- The smartivr dial status (0-12) a vendor number list reported; used
    -- while the number has no call of ours. NULL when nobody said.
    status_code INTEGER,
    upload_time INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, task_id, phone)
);

-- A number's calls in a task, newest last: attempts, the latest call (its
-- status) and the call history are range reads on this index.
CREATE INDEX calls_by_task_callee ON calls (tenant_id, task_id, callee, call_time);

-- Campaign statistics of a task (the CRM's dashboard query) read only these
-- indexes, never the wide call rows:
-- * totals and the breakdowns by carrier, province, intent level, outcome
--   and party, and the cost totals: scans in the order they group by, so
--   nothing is sorted (call_time last, so a window on a task is checked in
--   the index too);
CREATE INDEX calls_task_stats ON calls (tenant_id, task_id, carrier, province, intent_level_id,
    outcome, hangup_by, currency, cost, talk_ms, ring_ms, rounds, score, call_time);
-- * talk-time percentiles: `ORDER BY talk_ms LIMIT 1 OFFSET k` over answered
--   calls walks k entries;
CREATE INDEX calls_task_talk ON calls (tenant_id, task_id, outcome, talk_ms, call_time);
-- * time series: counts and sums per slot of call_time.
CREATE INDEX calls_task_time_stats ON calls (tenant_id, task_id, call_time, outcome, talk_ms, score);

-- The tag breakdown of a task without joining calls: `call_tags` carries
-- its call's task (written with the tags), indexed by task and tag.
CREATE INDEX call_tags_by_task ON call_tags (tenant_id, task_id, tag_id);
