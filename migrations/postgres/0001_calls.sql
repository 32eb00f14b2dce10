-- The unified call store, its dialogue turns and the catalogs records fill.

CREATE TABLE calls (
    tenant_id       TEXT    NOT NULL,
    call_id         TEXT    NOT NULL,
    source          BIGINT NOT NULL,
    external_id     TEXT    NOT NULL,
    task_id         TEXT    NOT NULL DEFAULT '',
    parent_task_id  TEXT    NOT NULL DEFAULT '',
    script_id       TEXT    NOT NULL DEFAULT '',
    callee          TEXT    NOT NULL,
    callee_raw      TEXT    NOT NULL DEFAULT '',
    caller          TEXT    NOT NULL DEFAULT '',
    caller_raw      TEXT    NOT NULL DEFAULT '',
    submit_time     BIGINT,
    call_time       BIGINT NOT NULL,
    ring_time       BIGINT,
    answer_time     BIGINT,
    hangup_time     BIGINT,
    ring_ms         BIGINT NOT NULL DEFAULT 0,
    talk_ms         BIGINT NOT NULL DEFAULT 0,
    total_ms        BIGINT NOT NULL DEFAULT 0,
    billed_ms       BIGINT NOT NULL DEFAULT 0,
    outcome         BIGINT NOT NULL DEFAULT 0,
    vendor_status   TEXT    NOT NULL DEFAULT '',
    hangup_cause    TEXT    NOT NULL DEFAULT '',
    sip_code        TEXT    NOT NULL DEFAULT '',
    hangup_by       BIGINT NOT NULL DEFAULT 0,
    score           BIGINT,
    intent_level_id TEXT,
    rounds          BIGINT NOT NULL DEFAULT 0,
    recording_url   TEXT    NOT NULL DEFAULT '',
    gender          BIGINT NOT NULL DEFAULT 0,
    province        TEXT    NOT NULL DEFAULT '',
    city            TEXT    NOT NULL DEFAULT '',
    area_code       TEXT    NOT NULL DEFAULT '',
    carrier         TEXT    NOT NULL DEFAULT '',
    region          TEXT    NOT NULL DEFAULT '',
    post_code       TEXT    NOT NULL DEFAULT '',
    rate            TEXT    NOT NULL DEFAULT '',
    base_cost       TEXT    NOT NULL DEFAULT '',
    cost            TEXT    NOT NULL DEFAULT '',
    currency        TEXT    NOT NULL DEFAULT '',
    settle_rate     TEXT    NOT NULL DEFAULT '',
    settle_cost     TEXT    NOT NULL DEFAULT '',
    quote_exchange  TEXT    NOT NULL DEFAULT '',
    bill_period     TEXT    NOT NULL DEFAULT '',
    dtmf            TEXT    NOT NULL DEFAULT '',
    recall_count    BIGINT NOT NULL DEFAULT 0,
    recall_of       TEXT    NOT NULL DEFAULT '',
    customer_name   TEXT    NOT NULL DEFAULT '',
    line_id         TEXT    NOT NULL DEFAULT '',
    attributes      TEXT    NOT NULL DEFAULT '{}',
    update_time     BIGINT,
    sync_time       BIGINT NOT NULL,
    content_hash    TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, call_id),
    UNIQUE (tenant_id, source, external_id)
);

-- One index per way a listing narrows: the default order, each filter that is
-- selective on its own, and the task listing (the CRM's most common query).
CREATE INDEX calls_by_time        ON calls (tenant_id, call_time, call_id);
CREATE INDEX calls_by_task_time   ON calls (tenant_id, task_id, call_time, call_id);
CREATE INDEX calls_by_callee      ON calls (tenant_id, callee);
CREATE INDEX calls_by_caller      ON calls (tenant_id, caller);
CREATE INDEX calls_by_score       ON calls (tenant_id, score, call_id);
CREATE INDEX calls_by_talk        ON calls (tenant_id, talk_ms, call_id);
CREATE INDEX calls_by_intent      ON calls (tenant_id, intent_level_id, call_time);
CREATE INDEX calls_by_answer_time ON calls (tenant_id, answer_time);
CREATE INDEX calls_by_hangup_time ON calls (tenant_id, hangup_time);
CREATE INDEX calls_by_sync_time   ON calls (tenant_id, sync_time);

-- The tags of a call, and the groups those tags belong to, for filtering.
CREATE TABLE call_tags (
    tenant_id TEXT NOT NULL,
    call_id   TEXT NOT NULL,
    tag_id    TEXT NOT NULL,
    -- The call's task, so a task's tag counts need not join calls.
    task_id   TEXT NOT NULL DEFAULT '',
    position  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, call_id, tag_id)
);
CREATE INDEX call_tags_by_tag ON call_tags (tenant_id, tag_id, call_id);

CREATE TABLE call_tag_groups (
    tenant_id TEXT NOT NULL,
    call_id   TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, call_id, group_id)
);
CREATE INDEX call_tag_groups_by_group ON call_tag_groups (tenant_id, group_id, call_id);

CREATE TABLE dialogue_turns (
    tenant_id      TEXT    NOT NULL,
    call_id        TEXT    NOT NULL,
    sequence       BIGINT NOT NULL,
    kind           BIGINT NOT NULL,
    customer_text  TEXT    NOT NULL DEFAULT '',
    robot_text     TEXT    NOT NULL DEFAULT '',
    node_id        TEXT    NOT NULL DEFAULT '',
    node_name      TEXT    NOT NULL DEFAULT '',
    keyword        TEXT    NOT NULL DEFAULT '',
    score          BIGINT NOT NULL DEFAULT 0,
    speak_ms       BIGINT NOT NULL DEFAULT 0,
    play_ms        BIGINT NOT NULL DEFAULT 0,
    asr_latency_ms BIGINT NOT NULL DEFAULT 0,
    tags           TEXT    NOT NULL DEFAULT '[]',
    turn_time      BIGINT,
    after_transfer BOOLEAN NOT NULL DEFAULT FALSE,
    turn_id        TEXT    NOT NULL DEFAULT '',
    attributes     TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, call_id, sequence)
);

CREATE TABLE tasks (
    tenant_id      TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    parent_task_id TEXT NOT NULL DEFAULT '',
    script_id      TEXT NOT NULL DEFAULT '',
    source         BIGINT,
    create_time    BIGINT,
    update_time    BIGINT,
    attributes     TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, task_id)
);

CREATE TABLE tags (
    tenant_id   TEXT NOT NULL,
    tag_id      TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    color       TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, tag_id)
);

CREATE TABLE tag_groups (
    tenant_id TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    name      TEXT NOT NULL DEFAULT '',
    scene_id  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, group_id)
);

CREATE TABLE tag_group_members (
    tenant_id TEXT NOT NULL,
    tag_id    TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, tag_id, group_id)
);

CREATE TABLE intent_levels (
    tenant_id       TEXT NOT NULL,
    intent_level_id TEXT NOT NULL,
    name            TEXT NOT NULL DEFAULT '',
    alias           TEXT NOT NULL DEFAULT '',
    color           TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, intent_level_id)
);

-- Substring search on phone digits and dialogue text (`LIKE '%…%'`): trigram
-- indexes serve patterns of three characters or more; shorter ones scan the
-- rows the other conditions leave.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX calls_callee_trgm ON calls USING gin (callee gin_trgm_ops);
CREATE INDEX calls_caller_trgm ON calls USING gin (caller gin_trgm_ops);
CREATE INDEX turns_customer_trgm ON dialogue_turns USING gin (customer_text gin_trgm_ops);
CREATE INDEX turns_robot_trgm ON dialogue_turns USING gin (robot_text gin_trgm_ops);
