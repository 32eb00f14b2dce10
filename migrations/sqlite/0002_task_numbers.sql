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
--   nothing is sorted;
CREATE INDEX calls_task_stats ON calls (tenant_id, task_id, carrier, province, intent_level_id,
    outcome, hangup_by, currency, cost, talk_ms, ring_ms, rounds, score);
-- * talk-time percentiles: `ORDER BY talk_ms LIMIT 1 OFFSET k` over answered
--   calls walks k entries;
CREATE INDEX calls_task_talk ON calls (tenant_id, task_id, outcome, talk_ms);
-- * time series: counts and sums per slot of call_time.
CREATE INDEX calls_task_time_stats ON calls (tenant_id, task_id, call_time, outcome, talk_ms, score);

-- The tag breakdown of a task without joining calls: each call tag with its
-- call's task, kept by triggers so the Rust write path stays as it is. A
-- filter on anything but tasks joins call_tags with calls instead; both give
-- the same counts, and the tests check both.
CREATE TABLE call_tag_tasks (
    tenant_id TEXT NOT NULL,
    call_id   TEXT NOT NULL,
    tag_id    TEXT NOT NULL,
    task_id   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, call_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX call_tag_tasks_by_task ON call_tag_tasks (tenant_id, task_id, tag_id);

INSERT INTO call_tag_tasks (tenant_id, call_id, tag_id, task_id)
SELECT ct.tenant_id, ct.call_id, ct.tag_id, c.task_id
FROM call_tags ct JOIN calls c ON c.tenant_id = ct.tenant_id AND c.call_id = ct.call_id;

CREATE TRIGGER call_tag_tasks_on_tag_insert AFTER INSERT ON call_tags BEGIN
    INSERT OR REPLACE INTO call_tag_tasks (tenant_id, call_id, tag_id, task_id)
    SELECT NEW.tenant_id, NEW.call_id, NEW.tag_id, c.task_id FROM calls c
    WHERE c.tenant_id = NEW.tenant_id AND c.call_id = NEW.call_id;
END;

CREATE TRIGGER call_tag_tasks_on_tag_delete AFTER DELETE ON call_tags BEGIN
    DELETE FROM call_tag_tasks
    WHERE tenant_id = OLD.tenant_id AND call_id = OLD.call_id AND tag_id = OLD.tag_id;
END;

CREATE TRIGGER call_tag_tasks_on_task_change AFTER UPDATE OF task_id ON calls
WHEN OLD.task_id IS NOT NEW.task_id BEGIN
    UPDATE call_tag_tasks SET task_id = NEW.task_id
    WHERE tenant_id = NEW.tenant_id AND call_id = NEW.call_id;
END;

CREATE TRIGGER call_tag_tasks_on_call_delete AFTER DELETE ON calls BEGIN
    DELETE FROM call_tag_tasks WHERE tenant_id = OLD.tenant_id AND call_id = OLD.call_id;
END;
