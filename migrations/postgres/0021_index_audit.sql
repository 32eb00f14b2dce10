-- Fewer, better indexes on `calls` and `call_tags` (issue 14's index audit:
-- BENCHMARKS.md, "Index audit", has each index's cost on ingest, and
-- docs/store.md each index's readers).
--
-- * `call_tags_by_task` has no reader: a task's tag counts come from the
--   rollups, the rollup triggers take a tag row's task from `calls` (0020;
--   SQLite's, 0016 and 0019), and the raw tag breakdown joins on the call.
--   Nor has the column it indexed, `call_tags.task_id`, which every tag row
--   wrote and every partial view of a stored call rewrote (an UPDATE of the
--   tags it kept, to follow the call's task): gone.
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
-- The new indexes are built first, under names of their own, while the old
-- ones still serve: a build holds writes to `calls` back (about a minute per
-- index at 10M calls on this project's 2-core test machine) but not reads.
-- The old ones are then dropped and the new ones take their names, at the
-- end of the migration's transaction, where `DROP INDEX` holds reads back
-- too, only until the commit. Plan the upgrade of a large database for the
-- builds. The pool's 30 s `statement_timeout` would cancel a build on a
-- large table, so this migration lifts it.
SET LOCAL statement_timeout = 0;

CREATE INDEX calls_by_task_time_0021 ON calls (tenant_id, task_id, call_time, call_id)
    INCLUDE (outcome, talk_ms, score);
CREATE INDEX calls_by_callee_0021 ON calls (tenant_id, callee, task_id, call_time, call_id);
CREATE INDEX calls_by_score_0021 ON calls (tenant_id, (COALESCE(score, -2147483649)), call_id);

DROP INDEX call_tags_by_task;
ALTER TABLE call_tags DROP COLUMN task_id;
DROP INDEX calls_task_time_stats;
DROP INDEX calls_by_task_time;
DROP INDEX calls_by_task_callee;
DROP INDEX calls_by_callee;
DROP INDEX calls_by_score;
ALTER INDEX calls_by_task_time_0021 RENAME TO calls_by_task_time;
ALTER INDEX calls_by_callee_0021 RENAME TO calls_by_callee;
ALTER INDEX calls_by_score_0021 RENAME TO calls_by_score;
