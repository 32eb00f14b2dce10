-- Fewer, better indexes on `calls` and `call_tags` (issue 14's index audit;
-- BENCHMARKS.md, "Index audit", has each index's cost on ingest and its
-- readers).
--
-- * `call_tags_by_task` has no reader: a task's tag counts come from the
--   rollups, the rollup triggers take a tag row's task from `calls` (0020),
--   and the raw tag breakdown joins on the call.
-- * `calls_task_time_stats` served only the time series' raw path (a window
--   that is not whole hours), with the same leading columns as the task
--   listing's `calls_by_task_time`. One index now serves both: the listing's
--   keyset order `(call_time, call_id)`, and the time series read from the
--   index alone through its INCLUDE columns.
-- * `calls_by_callee (tenant_id, callee)` and `calls_by_task_callee
--   (tenant_id, task_id, callee, call_time)` answered the same equalities
--   (every reader fixes the number, and those of the second the task too):
--   the phone filter and erasure, and a number's history in a task and its
--   kept state (0015). One index, number first, serves both.
-- * `calls_by_score (tenant_id, score, call_id)` served score ranges but not
--   the listings ordered by score, which sort by `COALESCE(score, …)` so
--   that calls without a score come last: ScoreDesc walked and sorted all of
--   a tenant's calls (134 ms at 200,000). Indexed on that expression, it
--   serves the order and its keyset, and the score ranges, which the store
--   now writes on the same expression.
--
-- Building an index takes a lock that holds writes to `calls` back until it
-- is built (about a minute per index at 10M calls on this project's test
-- machine): plan the upgrade of a large database for it.

DROP INDEX call_tags_by_task;

DROP INDEX calls_task_time_stats;
DROP INDEX calls_by_task_time;
CREATE INDEX calls_by_task_time ON calls (tenant_id, task_id, call_time, call_id)
    INCLUDE (outcome, talk_ms, score);

DROP INDEX calls_by_task_callee;
DROP INDEX calls_by_callee;
CREATE INDEX calls_by_callee ON calls (tenant_id, callee, task_id, call_time, call_id);

DROP INDEX calls_by_score;
CREATE INDEX calls_by_score ON calls (tenant_id, (COALESCE(score, -2147483649)), call_id);
