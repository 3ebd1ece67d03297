-- Whether a household state asked for a device, beside its data (as its category is since
-- 0013), so that finding device candidates does not read the data. The hub writes both
-- columns from the parsed record; this fills the states kept before.
ALTER TABLE household_versions ADD COLUMN wants_device INTEGER NOT NULL DEFAULT 0 CHECK (wants_device IN (0, 1));

UPDATE household_versions SET wants_device = 1 WHERE json_extract(data, '$.flags.wants_device') = 1;
