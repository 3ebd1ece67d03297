-- Whether a household state asked for a device, beside its data (as its category is since
-- 0013), so that finding device candidates does not read the data. The hub writes both
-- columns from the parsed record; this fills the states kept before.
ALTER TABLE household_versions ADD COLUMN wants_device BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE household_versions SET wants_device = TRUE WHERE (data::jsonb -> 'flags' ->> 'wants_device') = 'true';

-- A record being received carries both, worked out by the hub.
ALTER TABLE batch_staging ADD COLUMN category TEXT, ADD COLUMN wants_device BOOLEAN NOT NULL DEFAULT FALSE;
