-- The read side: lookups by the vendor's own id, and tags of dialogue turns
-- counted as tags of their call.

-- The vendor's second id of a call, so `CallFilter.external_ids` finds it by
-- either id the vendor shows: smartivr's record `id` (also kept in
-- `attributes.record_id`) beside its `callid` (`external_id`). '' when none.
ALTER TABLE calls ADD COLUMN alt_id TEXT NOT NULL DEFAULT '';
UPDATE calls SET alt_id = COALESCE(json_extract(attributes, '$.record_id'), '')
    WHERE source = 1 AND json_valid(attributes);
-- One index probe per id, whatever the source: the unique key starts with
-- the source, which a lookup by id alone does not know.
CREATE INDEX calls_by_external_id ON calls (tenant_id, external_id);
CREATE INDEX calls_by_alt_id ON calls (tenant_id, alt_id) WHERE alt_id <> '';

-- Data-quality flags of the call (`Call.quality_flags`), stored `,a,b,` so a
-- filter matches `,a,` whole; '' when none.
ALTER TABLE calls ADD COLUMN quality_flags TEXT NOT NULL DEFAULT '';

-- Where a call's tag (or tag group) row comes from, as bits: 1 the call's own
-- tags, 2 a tag of one of its dialogue turns. A new version that carries only
-- one of the two parts replaces that part's bit and keeps the other's.
ALTER TABLE call_tags ADD COLUMN origin INTEGER NOT NULL DEFAULT 1;
ALTER TABLE call_tag_groups ADD COLUMN origin INTEGER NOT NULL DEFAULT 1;
-- The order the vendor named the call's groups in (first seen first).
ALTER TABLE call_tag_groups ADD COLUMN position INTEGER NOT NULL DEFAULT 0;

-- Turn tags of calls stored before this migration.
INSERT INTO call_tags (tenant_id, call_id, tag_id, task_id, position, origin)
    SELECT d.tenant_id, d.call_id, json_extract(t.value, '$.id'), c.task_id,
           1000000 + d.sequence * 1000 + t.key, 2
    FROM dialogue_turns d
    JOIN calls c ON c.tenant_id = d.tenant_id AND c.call_id = d.call_id,
    json_each(d.tags) t
    WHERE json_valid(d.tags) AND json_extract(t.value, '$.id') IS NOT NULL
    ORDER BY d.tenant_id, d.call_id, d.sequence, t.key
    ON CONFLICT (tenant_id, call_id, tag_id) DO UPDATE SET origin = call_tags.origin | 2;
INSERT INTO call_tag_groups (tenant_id, call_id, group_id, origin, position)
    SELECT d.tenant_id, d.call_id, json_extract(g.value, '$.id'), 2, 1000000
    FROM dialogue_turns d, json_each(d.tags) t, json_each(json_extract(t.value, '$.groups')) g
    WHERE json_valid(d.tags) AND json_extract(g.value, '$.id') IS NOT NULL
    ORDER BY d.tenant_id, d.call_id, d.sequence, t.key, g.key
    ON CONFLICT (tenant_id, call_id, group_id) DO UPDATE SET origin = call_tag_groups.origin | 2;
