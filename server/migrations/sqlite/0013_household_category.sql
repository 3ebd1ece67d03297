-- Each household state's category beside its data, so that counting households by category
-- does not read the data. Written with every state from now on.
ALTER TABLE household_versions ADD COLUMN category TEXT;

UPDATE household_versions SET category = CASE
    WHEN data LIKE '{"category":"POOR"%' THEN 'POOR'
    WHEN data LIKE '{"category":"NEAR_POOR"%' THEN 'NEAR_POOR'
    WHEN data LIKE '{"category":"SOCIAL_POLICY"%' THEN 'SOCIAL_POLICY'
    WHEN data LIKE '{"category":"MERITORIOUS_SERVICE"%' THEN 'MERITORIOUS_SERVICE'
    ELSE 'OTHER' END;
