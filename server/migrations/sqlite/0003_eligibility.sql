-- The programme's rules, version by version, and the eligibility decisions given.

-- One row per version of the rules; a version holds from `valid_from` until the next
-- version's. `rules` is the version's content (JSON). Versions are never changed.
CREATE TABLE policy_versions (
    version     INTEGER PRIMARY KEY,
    valid_from  TEXT NOT NULL UNIQUE,
    rules       TEXT NOT NULL,
    recorded_by TEXT,
    recorded_at TEXT
) STRICT;

-- Every decision given, with who asked and when: the record of who looked up whom. A
-- decision's id is `<call_id>-<idx>` (idx: its place in a batch call; 0 for a single check).
-- `body` is the answer as given (JSON), so it reads back the same whatever changes later.
CREATE TABLE eligibility_decisions (
    id             INTEGER PRIMARY KEY,
    call_id        TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    request_id     TEXT NOT NULL,
    asked_by       TEXT NOT NULL,
    decided_at     TEXT NOT NULL,
    query_kind     TEXT NOT NULL CHECK (query_kind IN ('CITIZEN_ID', 'HOUSEHOLD_CODE', 'CERTIFICATE_NUMBER')),
    query_value    TEXT NOT NULL,
    as_of          TEXT NOT NULL,
    household_code TEXT,
    eligible       INTEGER NOT NULL,
    policy_version INTEGER NOT NULL,
    body           TEXT NOT NULL,
    UNIQUE (call_id, idx)
) STRICT;

CREATE INDEX eligibility_decisions_query ON eligibility_decisions (query_value);
