-- Statistics that keep up without autovacuum (issue 14).
--
-- PostgreSQL plans from the statistics ANALYZE gathers. A table never
-- analysed is estimated with fixed selectivities: `tenant_id = $1 AND source
-- = $2` is taken to match 0.5 % of 0.5 % of the rows, so the store's look-up
-- of a batch's 500 external ids became a walk of the tenant's whole key range
-- with the ids as a filter (`calls_tenant_id_source_external_id_key`, index
-- condition on its first two columns), reading every call of the tenant for
-- each batch. At 200,000 calls through UpsertCalls on a cluster with
-- autovacuum off, pg_stat_statements counted 96,600 buffers a look-up and
-- 37 s of its 114 s in the calls' insert; after one ANALYZE the same look-up
-- probes the key 500 times (1,500 buffers).
--
-- Autovacuum analyses a table once a tenth of it changed, and the README
-- requires it. This is the net under it: the store calls the function after
-- its first write and then each time the rows it wrote since start double
-- (at least every 100,000 rows, `AfterWriteSchedule` in src/store/dialect.rs),
-- and it analyses the tables of callscope's schema of which more than half
-- changed since their last ANALYZE, plus 1,000 rows, which autovacuum never
-- lets happen. Without autovacuum a growing table is so analysed each time it
-- about doubles. SKIP_LOCKED: a table another session is analysing or
-- vacuuming is left to it. A table the role does not own is skipped with a
-- warning by ANALYZE itself.
CREATE FUNCTION callscope_analyze_stale() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    stale RECORD;
BEGIN
    FOR stale IN
        SELECT relname FROM pg_stat_user_tables
        WHERE schemaname = current_schema()
            AND n_mod_since_analyze > 1000 + n_live_tup / 2
        ORDER BY relname
    LOOP
        EXECUTE format('ANALYZE (SKIP_LOCKED) %I', stale.relname);
    END LOOP;
END
$$;
