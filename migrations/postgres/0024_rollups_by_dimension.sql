-- Rollup indexes that lead with the dimension (issue 14), as SQLite's
-- rollup keys now do (its 0024).
--
-- Every reader asks for one dimension, or a list of them, over a range of
-- buckets; `call_rollups_by_task` (tenant, task, hour) gave it every
-- dimension's rows of the range, each a heap fetch, to keep its own. The
-- 30-day time series of one task of the suite's 200,000-call database read
-- 9,674 rows for the 668 `all` ones it kept: 6.2-7.4 ms warm, 46 ms cold.
-- On `call_rollups_by_dimension` (tenant, task, dim, hour) it reads those
-- 668: 0.51-0.54 ms warm, 3.0 ms cold. An index that also held the five
-- summed columns (an index-only scan) answered in 0.35-0.47 ms, but was
-- 104 MB for a 143 MB table, against 16 MB for `call_rollups_by_task`.
--
-- `call_rollups_by_task` stays: the fold checks count one hour's rows of a
-- task, every dimension of it. The tenant-wide indexes (stats over every
-- task) lead with the dimension in the same way, so they no longer offer
-- the fold checks the walk through every task's rows of an hour that 0020
-- describes.
--
-- As in 0021, the new indexes are built first, while the old ones still
-- serve: a build holds writes to the table back, not reads. The old
-- tenant-wide indexes are dropped and the new ones take their names at the
-- end of the migration's transaction, where `DROP INDEX` holds reads back
-- too, only until the commit. The pool's 30 s `statement_timeout` would
-- cancel a build on a large table, so this migration lifts it.
SET LOCAL statement_timeout = 0;

CREATE INDEX call_rollups_by_dimension ON call_rollups (tenant_id, task_id, dim, hour);
CREATE INDEX call_rollups_by_hour_0024 ON call_rollups (tenant_id, dim, hour);
CREATE INDEX call_rollup_days_by_dimension ON call_rollup_days (tenant_id, task_id, dim, day);
CREATE INDEX call_rollup_days_by_day_0024 ON call_rollup_days (tenant_id, dim, day);

DROP INDEX call_rollups_by_hour;
DROP INDEX call_rollup_days_by_day;
ALTER INDEX call_rollups_by_hour_0024 RENAME TO call_rollups_by_hour;
ALTER INDEX call_rollup_days_by_day_0024 RENAME TO call_rollup_days_by_day;
