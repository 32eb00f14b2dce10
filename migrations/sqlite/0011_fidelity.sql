-- Fidelity of vendor records across views and over time.

-- A currency per amount: `base_cost` is in its own currency (LAAFFIC: USD)
-- whatever the quote `currency` of `rate` and `cost`; the settlement amounts
-- likewise. '' when there is no such amount.
ALTER TABLE calls ADD COLUMN base_cost_currency TEXT NOT NULL DEFAULT '';
ALTER TABLE calls ADD COLUMN settle_currency TEXT NOT NULL DEFAULT '';
UPDATE calls SET base_cost_currency = 'USD' WHERE source = 2 AND base_cost <> '';
UPDATE calls SET settle_currency = 'USD'
    WHERE source = 2 AND (settle_rate <> '' OR settle_cost <> '');

-- Names as the vendor sent them with each call: a later record renaming a
-- tag or a level changes the catalog, not older calls. JSON of the level,
-- tag or group as sent; NULL (calls stored before this migration, or sent
-- by id only) reads the catalog.
ALTER TABLE calls ADD COLUMN intent_level_snapshot TEXT;
ALTER TABLE call_tags ADD COLUMN snapshot TEXT;
ALTER TABLE call_tag_groups ADD COLUMN snapshot TEXT;
