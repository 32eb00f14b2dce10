-- Fewer, better indexes on `calls` and `call_tags`: the PostgreSQL
-- migration of the same number says why. SQLite has no INCLUDE, so the
-- task listing's index carries the time series' columns as trailing key
-- columns, where they serve the same reads.

DROP INDEX call_tags_by_task;
ALTER TABLE call_tags DROP COLUMN task_id;

DROP INDEX calls_task_time_stats;
DROP INDEX calls_by_task_time;
CREATE INDEX calls_by_task_time ON calls (tenant_id, task_id, call_time, call_id, outcome, talk_ms, score);

DROP INDEX calls_by_task_callee;
DROP INDEX calls_by_callee;
CREATE INDEX calls_by_callee ON calls (tenant_id, callee, task_id, call_time, call_id);

DROP INDEX calls_by_score;
CREATE INDEX calls_by_score ON calls (tenant_id, COALESCE(score, -2147483649), call_id);
