-- The decisions of batch calls, stored run by run: one row per run of consecutive decisions
-- of one call (at most 1,024, decided together), with who asked and when, and every answer
-- as given. Decision `<call_id>-<idx>` of a batch call is in the run of its call whose
-- `first_idx`..`last_idx` holds `idx`. One row per run instead of one per decision keeps a
-- call of a million questions cheap to record; single checks stay in eligibility_decisions.
-- `body`: a JSON array of {idx, kind, value, as_of, answer}.
CREATE TABLE eligibility_decision_runs (
    id         BIGSERIAL PRIMARY KEY,
    call_id    TEXT NOT NULL,
    first_idx  BIGINT NOT NULL,
    last_idx   BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    asked_by   TEXT NOT NULL,
    decided_at TIMESTAMPTZ NOT NULL,
    decisions  BIGINT NOT NULL CHECK (decisions > 0),
    body       TEXT NOT NULL,
    UNIQUE (call_id, first_idx),
    CHECK (first_idx <= last_idx)
);

-- Stored out of line without compression: compressing a run costs more time than the space
-- it saves is worth while a batch call waits on it.
ALTER TABLE eligibility_decision_runs ALTER COLUMN body SET STORAGE EXTERNAL;
