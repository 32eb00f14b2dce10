-- The second wall between tenants. Every statement of callscope already
-- names its tenant; on top of that, each transaction declares its tenant with
-- set_config('callscope.tenant', …, true), and these policies hide every other
-- tenant's rows from it. A query that forgot its tenant predicate then answers
-- nothing instead of another tenant's data.
--
-- FORCE applies the policies to the tables' owner too, which is the role
-- callscope connects as. Superusers and roles with BYPASSRLS are never subject
-- to row-level security: run callscope as an ordinary role (see README,
-- Security).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'calls', 'call_tags', 'call_tag_groups', 'dialogue_turns', 'tasks', 'tags',
        'tag_groups', 'tag_group_members', 'intent_levels', 'task_numbers',
        'rejected_records'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = current_setting(''callscope.tenant'', true)) '
            'WITH CHECK (tenant_id = current_setting(''callscope.tenant'', true))',
            t);
    END LOOP;
END
$$;
