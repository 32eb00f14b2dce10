-- benches/partitions/run.sh, step 2: every secondary index of `calls` on both tables, then VACUUM ANALYZE.

SET maintenance_work_mem = '1GB';
SELECT format('%s', replace(replace(indexdef, ' ON public.calls ', ' ON public.calls_flat '), 'INDEX ' || indexname, 'INDEX ' || indexname || '_flat')) || ';'
  FROM pg_indexes WHERE schemaname='public' AND tablename='calls' AND indexname NOT IN ('calls_pkey','calls_tenant_id_source_external_id_key')
UNION ALL
SELECT format('%s', replace(replace(indexdef, ' ON public.calls ', ' ON public.calls_part '), 'INDEX ' || indexname, 'INDEX ' || indexname || '_part')) || ';'
  FROM pg_indexes WHERE schemaname='public' AND tablename='calls' AND indexname NOT IN ('calls_pkey','calls_tenant_id_source_external_id_key')
\gexec
VACUUM ANALYZE calls_flat;
VACUUM ANALYZE calls_part;
