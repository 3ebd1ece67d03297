-- The households a citizen ID was ever recorded in: one row per (citizen ID, household)
-- instead of one per member of every household state. A household's new state adds rows
-- only for members it did not list before, so a monthly change of address or category
-- writes nothing here. Readers look at the household's states for the date they ask about
-- and check that the state lists the ID: a row says "look here", never "is a member now".
CREATE TABLE citizen_households (
    citizen_id     TEXT NOT NULL,
    household_code TEXT NOT NULL,
    PRIMARY KEY (citizen_id, household_code)
) STRICT, WITHOUT ROWID;

INSERT INTO citizen_households (citizen_id, household_code)
SELECT DISTINCT c.citizen_id, v.household_code
FROM household_citizens c JOIN household_versions v ON v.id = c.version_id;

DROP TABLE household_citizens;
