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
CREATE TABLE task_number_states (
    tenant_id          TEXT    NOT NULL,
    task_id            TEXT    NOT NULL,
    phone              TEXT    NOT NULL,
    -- 1 while the number is in task_numbers (uploaded or vendor-listed).
    listed             INTEGER NOT NULL DEFAULT 0,
    -- task_numbers.status_code, kept for the status filter of numbers
    -- without a call.
    vendor_status_code INTEGER,
    -- Calls of the task to the number.
    attempts           INTEGER NOT NULL DEFAULT 0,
    -- The latest call (call_time, then call_id, highest); NULL without calls.
    last_call_id       TEXT,
    last_call_time     INTEGER,
    last_outcome       INTEGER,
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

-- A call arrives: one more attempt, and it is the latest when it sorts after
-- the kept one. (SET expressions read the row as it was.)
CREATE TRIGGER calls_keep_number_state_insert AFTER INSERT ON calls
WHEN new.task_id <> ''
BEGIN
    INSERT INTO task_number_states (tenant_id, task_id, phone, attempts,
        last_call_id, last_call_time, last_outcome)
    VALUES (new.tenant_id, new.task_id, new.callee, 1, new.call_id, new.call_time, new.outcome)
    ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
        attempts = attempts + 1,
        last_outcome = CASE WHEN last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (last_call_time, last_call_id)
            THEN excluded.last_outcome ELSE last_outcome END,
        last_call_time = CASE WHEN last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (last_call_time, last_call_id)
            THEN excluded.last_call_time ELSE last_call_time END,
        last_call_id = CASE WHEN last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (last_call_time, last_call_id)
            THEN excluded.last_call_id ELSE last_call_id END;
END;

-- A call goes: one attempt less; when it was the latest, the latest is read
-- again from the task's callee index; a number left with no call and no list
-- entry leaves the task.
CREATE TRIGGER calls_keep_number_state_delete AFTER DELETE ON calls
WHEN old.task_id <> ''
BEGIN
    UPDATE task_number_states SET attempts = attempts - 1
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.callee;
    UPDATE task_number_states SET (last_call_id, last_call_time, last_outcome) = (
            SELECT l.call_id, l.call_time, l.outcome FROM calls l
            WHERE l.tenant_id = old.tenant_id AND l.task_id = old.task_id AND l.callee = old.callee
            ORDER BY l.call_time DESC, l.call_id DESC LIMIT 1)
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.callee
          AND last_call_id = old.call_id;
    DELETE FROM task_number_states
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.callee
          AND attempts <= 0 AND listed = 0;
END;

-- A call changes what the state reads (a newer view moves its time, outcome,
-- task or callee): the old version leaves as a delete would, the new one
-- arrives as an insert would. Upserts that rewrite the same values do nothing.
CREATE TRIGGER calls_keep_number_state_update
AFTER UPDATE OF call_id, task_id, callee, call_time, outcome ON calls
WHEN old.call_id IS NOT new.call_id OR old.task_id IS NOT new.task_id
  OR old.callee IS NOT new.callee OR old.call_time IS NOT new.call_time
  OR old.outcome IS NOT new.outcome
BEGIN
    UPDATE task_number_states SET attempts = attempts - 1
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.callee
          AND old.task_id <> '';
    UPDATE task_number_states SET (last_call_id, last_call_time, last_outcome) = (
            SELECT l.call_id, l.call_time, l.outcome FROM calls l
            WHERE l.tenant_id = old.tenant_id AND l.task_id = old.task_id AND l.callee = old.callee
            ORDER BY l.call_time DESC, l.call_id DESC LIMIT 1)
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.callee
          AND last_call_id = old.call_id AND old.task_id <> '';
    DELETE FROM task_number_states
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.callee
          AND attempts <= 0 AND listed = 0;
    INSERT INTO task_number_states (tenant_id, task_id, phone, attempts,
        last_call_id, last_call_time, last_outcome)
    SELECT new.tenant_id, new.task_id, new.callee, 1, new.call_id, new.call_time, new.outcome
        WHERE new.task_id <> ''
    ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
        attempts = attempts + 1,
        last_outcome = CASE WHEN last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (last_call_time, last_call_id)
            THEN excluded.last_outcome ELSE last_outcome END,
        last_call_time = CASE WHEN last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (last_call_time, last_call_id)
            THEN excluded.last_call_time ELSE last_call_time END,
        last_call_id = CASE WHEN last_call_id IS NULL
            OR (excluded.last_call_time, excluded.last_call_id) > (last_call_time, last_call_id)
            THEN excluded.last_call_id ELSE last_call_id END;
END;

-- A number is listed (upload or vendor list): it joins the task with the
-- vendor's status.
CREATE TRIGGER task_numbers_keep_state_insert AFTER INSERT ON task_numbers
WHEN new.task_id <> ''
BEGIN
    INSERT INTO task_number_states (tenant_id, task_id, phone, listed, vendor_status_code)
    VALUES (new.tenant_id, new.task_id, new.phone, 1, new.status_code)
    ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
        listed = 1, vendor_status_code = excluded.vendor_status_code;
END;

CREATE TRIGGER task_numbers_keep_state_update
AFTER UPDATE OF task_id, phone, status_code ON task_numbers
WHEN old.task_id IS NOT new.task_id OR old.phone IS NOT new.phone
  OR old.status_code IS NOT new.status_code
BEGIN
    UPDATE task_number_states SET listed = 0, vendor_status_code = NULL
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.phone;
    DELETE FROM task_number_states
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.phone
          AND attempts <= 0 AND listed = 0;
    INSERT INTO task_number_states (tenant_id, task_id, phone, listed, vendor_status_code)
    SELECT new.tenant_id, new.task_id, new.phone, 1, new.status_code
        WHERE new.task_id <> ''
    ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
        listed = 1, vendor_status_code = excluded.vendor_status_code;
END;

-- A number leaves the list (ErasePhone): it stays in the task while it has calls.
CREATE TRIGGER task_numbers_keep_state_delete AFTER DELETE ON task_numbers
WHEN old.task_id <> ''
BEGIN
    UPDATE task_number_states SET listed = 0, vendor_status_code = NULL
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.phone;
    DELETE FROM task_number_states
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id AND phone = old.phone
          AND attempts <= 0 AND listed = 0;
END;

-- The state of what is stored already.
INSERT INTO task_number_states (tenant_id, task_id, phone, attempts)
    SELECT tenant_id, task_id, callee, COUNT(*) FROM calls WHERE task_id <> ''
    GROUP BY tenant_id, task_id, callee;
UPDATE task_number_states SET (last_call_id, last_call_time, last_outcome) = (
    SELECT l.call_id, l.call_time, l.outcome FROM calls l
    WHERE l.tenant_id = task_number_states.tenant_id AND l.task_id = task_number_states.task_id
      AND l.callee = task_number_states.phone
    ORDER BY l.call_time DESC, l.call_id DESC LIMIT 1);
INSERT INTO task_number_states (tenant_id, task_id, phone, listed, vendor_status_code)
    SELECT tenant_id, task_id, phone, 1, status_code FROM task_numbers WHERE task_id <> ''
    ON CONFLICT (tenant_id, task_id, phone) DO UPDATE SET
        listed = 1, vendor_status_code = excluded.vendor_status_code;

-- GetTask's call figures kept per task (issue 15): calls by intent level
-- ('' for none) and outcome. Totals, answered calls and calls by level are
-- sums over a task's few rows. SQLite has one writer at a time, so one row
-- per key, kept by row triggers, costs no concurrency.
CREATE TABLE task_call_counts (
    tenant_id       TEXT    NOT NULL,
    task_id         TEXT    NOT NULL,
    intent_level_id TEXT    NOT NULL,
    outcome         INTEGER NOT NULL,
    calls           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, task_id, intent_level_id, outcome)
);

CREATE TRIGGER calls_count_insert AFTER INSERT ON calls
WHEN new.task_id <> ''
BEGIN
    INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
    VALUES (new.tenant_id, new.task_id, COALESCE(new.intent_level_id, ''), new.outcome, 1)
    ON CONFLICT (tenant_id, task_id, intent_level_id, outcome) DO UPDATE SET calls = calls + 1;
END;

CREATE TRIGGER calls_count_delete AFTER DELETE ON calls
WHEN old.task_id <> ''
BEGIN
    UPDATE task_call_counts SET calls = calls - 1
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id
          AND intent_level_id = COALESCE(old.intent_level_id, '') AND outcome = old.outcome;
END;

CREATE TRIGGER calls_count_update
AFTER UPDATE OF task_id, intent_level_id, outcome ON calls
WHEN old.task_id IS NOT new.task_id OR old.intent_level_id IS NOT new.intent_level_id
  OR old.outcome IS NOT new.outcome
BEGIN
    UPDATE task_call_counts SET calls = calls - 1
        WHERE tenant_id = old.tenant_id AND task_id = old.task_id
          AND intent_level_id = COALESCE(old.intent_level_id, '') AND outcome = old.outcome
          AND old.task_id <> '';
    INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
    SELECT new.tenant_id, new.task_id, COALESCE(new.intent_level_id, ''), new.outcome, 1
        WHERE new.task_id <> ''
    ON CONFLICT (tenant_id, task_id, intent_level_id, outcome) DO UPDATE SET calls = calls + 1;
END;

INSERT INTO task_call_counts (tenant_id, task_id, intent_level_id, outcome, calls)
    SELECT tenant_id, task_id, COALESCE(intent_level_id, ''), outcome, COUNT(*) FROM calls
    WHERE task_id <> '' GROUP BY tenant_id, task_id, COALESCE(intent_level_id, ''), outcome;
