-- A policy version that has not yet taken effect may be withdrawn: it stays, marked with who
-- withdrew it, when and why, and never holds. Only versions not withdrawn need distinct
-- start dates (a withdrawn version's date is free for another), so the table is rebuilt
-- without its UNIQUE (valid_from) and given a partial unique index instead.
CREATE TABLE policy_versions_new (
    version           INTEGER PRIMARY KEY,
    valid_from        TEXT NOT NULL,
    rules             TEXT NOT NULL,
    recorded_by       TEXT,
    recorded_at       TEXT,
    withdrawn_by      TEXT,
    withdrawn_at      TEXT,
    withdrawal_reason TEXT,
    CHECK ((withdrawn_at IS NULL) = (withdrawal_reason IS NULL))
) STRICT;
INSERT INTO policy_versions_new (version, valid_from, rules, recorded_by, recorded_at)
    SELECT version, valid_from, rules, recorded_by, recorded_at FROM policy_versions;
DROP TABLE policy_versions;
ALTER TABLE policy_versions_new RENAME TO policy_versions;
CREATE UNIQUE INDEX policy_versions_holding ON policy_versions (valid_from) WHERE withdrawn_at IS NULL;
