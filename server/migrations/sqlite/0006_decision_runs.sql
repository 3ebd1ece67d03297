-- The decisions of batch calls, stored run by run: one row per run of consecutive decisions
-- of one call (at most 1,024, decided together), with who asked and when, and every answer
-- as given. Decision `<call_id>-<idx>` of a batch call is in the run of its call whose
-- `first_idx`..`last_idx` holds `idx`. One row per run instead of one per decision keeps a
-- call of a million questions cheap to record; single checks stay in eligibility_decisions.
-- `body`: a JSON array of {idx, kind, value, as_of, answer}.
CREATE TABLE eligibility_decision_runs (
    id         INTEGER PRIMARY KEY,
    call_id    TEXT NOT NULL,
    first_idx  INTEGER NOT NULL,
    last_idx   INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    asked_by   TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    decisions  INTEGER NOT NULL CHECK (decisions > 0),
    body       TEXT NOT NULL,
    UNIQUE (call_id, first_idx),
    CHECK (first_idx <= last_idx)
) STRICT;
