-- Every change to a household's states or enrolments, in commit order: a hub that holds the
-- register in memory reads the changes made since it last looked (by itself, by another hub
-- on the same file, or by hand) and reads those households again. Written by the triggers
-- below, so that no write can skip it. Old rows are pruned; the newest row is never removed.
CREATE TABLE register_changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    household_code TEXT NOT NULL
) STRICT;

-- The first row: where an index built from an empty register starts.
INSERT INTO register_changes (household_code) VALUES ('');

CREATE TRIGGER household_versions_inserted AFTER INSERT ON household_versions
BEGIN INSERT INTO register_changes (household_code) VALUES (NEW.household_code); END;
CREATE TRIGGER household_versions_updated AFTER UPDATE ON household_versions
BEGIN INSERT INTO register_changes (household_code) VALUES (NEW.household_code); END;
CREATE TRIGGER household_versions_deleted AFTER DELETE ON household_versions
BEGIN INSERT INTO register_changes (household_code) VALUES (OLD.household_code); END;
CREATE TRIGGER enrollments_inserted AFTER INSERT ON enrollments
BEGIN INSERT INTO register_changes (household_code) VALUES (NEW.household_code); END;
CREATE TRIGGER enrollments_updated AFTER UPDATE ON enrollments
BEGIN INSERT INTO register_changes (household_code) VALUES (NEW.household_code); END;
CREATE TRIGGER enrollments_deleted AFTER DELETE ON enrollments
BEGIN INSERT INTO register_changes (household_code) VALUES (OLD.household_code); END;

-- Single decisions are no longer indexed by the value asked: each question's insert into that
-- index was a random write into a large tree. An auditor's search by value reads the
-- decisions of the time range asked, found by their call ids (which begin with the time).
DROP INDEX eligibility_decisions_query;
