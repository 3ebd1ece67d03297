-- What each call looked up (a citizen ID, a household code), beside its audit record, so that
-- an auditor can ask who looked at whom. Eligibility questions are found through their stored
-- decisions instead.
CREATE TABLE audit_subjects (
    kind  TEXT NOT NULL CHECK (kind IN ('CITIZEN_ID', 'HOUSEHOLD_CODE')),
    value TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (kind, value, seq)
) STRICT, WITHOUT ROWID;
