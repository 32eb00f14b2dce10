-- No JIT compilation in the triggers that keep rollups, counts and number
-- states (issue 14).
--
-- Their set-based statements over a statement's transition table are
-- estimated above `jit_above_cost` (100,000 by default) once a batch holds a
-- few hundred calls, so PostgreSQL compiled the rollup insert of every
-- batch with LLVM: pg_stat_statements at 30,000 calls (500 a statement)
-- counted 1,920 functions compiled in 60 executions, 1.4-2.1 s of JIT time
-- against 3.0-4.5 s of execution, and perf put libLLVM at 8 % of
-- PostgreSQL's CPU during UpsertCalls (12 % during a COPY, which fires the
-- same triggers). The compiled code runs once and is thrown
-- away, so the compile never pays back. The setting applies only while each
-- function runs (and the fold functions it calls, which are left without a
-- SET clause of their own: they run hundreds of times a batch, and each SET
-- clause costs a save and restore of the setting per call); a caller's own
-- queries keep the server's `jit`.
ALTER FUNCTION calls_rollup_added() SET jit = off;
ALTER FUNCTION calls_rollup_removed() SET jit = off;
ALTER FUNCTION calls_rollup_changed() SET jit = off;
ALTER FUNCTION call_tags_rollup_added() SET jit = off;
ALTER FUNCTION call_tags_rollup_removed() SET jit = off;
ALTER FUNCTION call_tags_rollup_changed() SET jit = off;
ALTER FUNCTION calls_number_states_added() SET jit = off;
ALTER FUNCTION calls_count_added() SET jit = off;
ALTER FUNCTION calls_count_removed() SET jit = off;
ALTER FUNCTION calls_count_changed() SET jit = off;
