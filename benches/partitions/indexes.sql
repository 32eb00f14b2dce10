-- Every secondary index of `calls` on its copies `calls_<copy>`, for each
-- copy named in the psql variable `copies` (comma-separated: run.sh step 2
-- passes `flat,part`, retention.sh `part`), then VACUUM ANALYZE of each.

SET maintenance_work_mem = '1GB';
SELECT replace(replace(indexdef, ' ON public.calls ', ' ON public.calls_' || copy || ' '),
               'INDEX ' || indexname || ' ', 'INDEX ' || indexname || '_' || copy || ' ') || ';'
  FROM pg_indexes, unnest(string_to_array(:'copies', ',')) AS copies(copy)
 WHERE schemaname = 'public' AND tablename = 'calls'
   AND indexname NOT IN ('calls_pkey', 'calls_tenant_id_source_external_id_key')
 ORDER BY copy, indexname
\gexec
SELECT format('VACUUM ANALYZE calls_%s', copy)
  FROM unnest(string_to_array(:'copies', ',')) AS copies(copy)
\gexec
