-- Every change to a household's states or enrolments, in commit order: a hub that holds the
-- register in memory reads the changes made since it last looked (by itself or by another
-- hub on the same file) and reads those households again; '*' stands for the whole register
-- (a batch too large to list), which a hub reads again in full. Households change only by
-- batches, which write their rows here in the same transaction (triggers on the states added
-- some 280 MiB of memory and 2-3 s to a million-household snapshot, measured); enrolments are
-- written here by the triggers below, whoever writes them. Old rows are pruned; the newest
-- row is never removed.
CREATE TABLE register_changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    household_code TEXT NOT NULL
) STRICT;

-- The first row: where an index built from an empty register starts.
INSERT INTO register_changes (household_code) VALUES ('');

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
