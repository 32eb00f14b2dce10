-- Fidelity of vendor records across views and over time.

-- A currency per amount: `base_cost` is in its own currency (LAAFFIC: USD)
-- whatever the quote `currency` of `rate` and `cost`; the settlement amounts
-- likewise. '' when there is no such amount.
ALTER TABLE calls ADD COLUMN base_cost_currency TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN settle_currency TEXT NOT NULL DEFAULT '';

-- Names as the vendor sent them with each call: a later record renaming a
-- tag or a level changes the catalog, not older calls. JSON of the level,
-- tag or group as sent; NULL (calls stored before this migration, or sent
-- by id only) reads the catalog.
ALTER TABLE calls ADD COLUMN intent_level_snapshot TEXT;
ALTER TABLE call_tags ADD COLUMN snapshot TEXT;
ALTER TABLE call_tag_groups ADD COLUMN snapshot TEXT;

-- The data updates below run tenant by tenant with the tenant declared, as
-- every statement of callscope does: under row-level security with FORCE a
-- migration run as the application role sees no rows without it, so the
-- backfills of 0010 (alt_id and the turn tags), written without a tenant,
-- changed nothing on such a database. They are done again here; each is
-- idempotent, so a database 0010 did fill (a role with BYPASSRLS) is left
-- as it was.
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT tenant_id FROM tenants LOOP
        PERFORM set_config('callscope.tenant', t, true);
        UPDATE calls SET base_cost_currency = 'USD'
            WHERE tenant_id = t AND source = 2 AND base_cost <> '' AND base_cost_currency = '';
        UPDATE calls SET settle_currency = 'USD'
            WHERE tenant_id = t AND source = 2 AND (settle_rate <> '' OR settle_cost <> '')
              AND settle_currency = '';
        UPDATE calls SET alt_id = COALESCE(attributes::jsonb ->> 'record_id', '')
            WHERE tenant_id = t AND source = 1 AND alt_id = ''
              AND COALESCE(attributes::jsonb ->> 'record_id', '') <> '';
        INSERT INTO call_tags (tenant_id, call_id, tag_id, task_id, position, origin)
            SELECT DISTINCT ON (d.tenant_id, d.call_id, tg.value ->> 'id')
                   d.tenant_id, d.call_id, tg.value ->> 'id', c.task_id,
                   1000000 + d.sequence * 1000 + tg.ordinality, 2
            FROM dialogue_turns d
            JOIN calls c ON c.tenant_id = d.tenant_id AND c.call_id = d.call_id
            CROSS JOIN LATERAL jsonb_array_elements(d.tags::jsonb) WITH ORDINALITY AS tg(value, ordinality)
            WHERE d.tenant_id = t AND tg.value ->> 'id' IS NOT NULL
            ORDER BY d.tenant_id, d.call_id, tg.value ->> 'id', d.sequence, tg.ordinality
            ON CONFLICT (tenant_id, call_id, tag_id) DO UPDATE SET origin = call_tags.origin | 2;
        INSERT INTO call_tag_groups (tenant_id, call_id, group_id, origin, position)
            SELECT DISTINCT d.tenant_id, d.call_id, g.value ->> 'id', 2, 1000000
            FROM dialogue_turns d
            CROSS JOIN LATERAL jsonb_array_elements(d.tags::jsonb) AS tg(value)
            CROSS JOIN LATERAL jsonb_array_elements(COALESCE(tg.value -> 'groups', '[]'::jsonb)) AS g(value)
            WHERE d.tenant_id = t AND g.value ->> 'id' IS NOT NULL
            ON CONFLICT (tenant_id, call_id, group_id) DO UPDATE SET origin = call_tag_groups.origin | 2;
    END LOOP;
    PERFORM set_config('callscope.tenant', '', true);
END
$$;
