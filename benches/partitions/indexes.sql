-- benches/partitions/run.sh, step 2: every secondary index of `calls` on both tables, then VACUUM ANALYZE.

SET maintenance_work_mem = '1GB';
SELECT replace(replace(indexdef, ' ON public.calls ', ' ON public.calls_' || copy || ' '),
               'INDEX ' || indexname || ' ', 'INDEX ' || indexname || '_' || copy || ' ') || ';'
  FROM pg_indexes, (VALUES ('flat'), ('part')) AS copies(copy)
 WHERE schemaname = 'public' AND tablename = 'calls'
   AND indexname NOT IN ('calls_pkey', 'calls_tenant_id_source_external_id_key')
 ORDER BY copy, indexname
\gexec
VACUUM ANALYZE calls_flat;
VACUUM ANALYZE calls_part;
