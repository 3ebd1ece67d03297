-- The retention policy (Law 91/2025/QH15 on personal data: kept no longer than its purpose
-- needs). A purge marks what it let go, with the request id of the purge call (whose audit
-- record is in the trail) and when:
--   - a single decision keeps its call, index, time, kind of question, outcome and policy
--     version; the value asked and the answer are blanked. Its record's attached digest then
--     cannot be recomputed: the verifier accepts it for a decision purged by a purge call in
--     the trail, decided at least a year before it;
--   - a run of decisions keeps the SHA-256 of its answers (what the attached digest holds),
--     so that its record verifies as before; the answers are blanked;
--   - a sample keeps its draw (commune, day, size, population, seed); the households go;
--   - a household off the list for years loses every state; a marker keeps its code, the day
--     it left the list, and the purge.
ALTER TABLE eligibility_decisions ADD COLUMN purged_by TEXT;
ALTER TABLE eligibility_decisions ADD COLUMN purged_at TEXT;
ALTER TABLE eligibility_decision_runs ADD COLUMN purged_by TEXT;
ALTER TABLE eligibility_decision_runs ADD COLUMN purged_at TEXT;
ALTER TABLE eligibility_decision_runs ADD COLUMN body_digest TEXT;
ALTER TABLE inspection_samples ADD COLUMN purged_by TEXT;
ALTER TABLE inspection_samples ADD COLUMN purged_at TEXT;

-- Decisions still kept, by age: a purge takes the oldest first without reading the rest (the
-- time only grows, so each insert lands at the index's end).
CREATE INDEX eligibility_decisions_kept ON eligibility_decisions (decided_at) WHERE purged_by IS NULL;
CREATE INDEX eligibility_decision_runs_kept ON eligibility_decision_runs (decided_at) WHERE purged_by IS NULL;

CREATE TABLE purged_households (
    household_code TEXT PRIMARY KEY,
    removed_on     TEXT NOT NULL,
    removal_reason TEXT,
    purged_by      TEXT NOT NULL,
    purged_at      TEXT NOT NULL
) STRICT;

-- Decisions stay append-only, a purge aside: only the value asked and the answer may be
-- blanked, once, by a purge at least 365 days after the decision; nothing else changes.
DROP TRIGGER eligibility_decisions_no_update;
CREATE TRIGGER eligibility_decisions_no_update BEFORE UPDATE ON eligibility_decisions
WHEN NOT (
    OLD.purged_by IS NULL AND NEW.purged_by IS NOT NULL AND NEW.purged_at IS NOT NULL
    AND julianday(NEW.purged_at) - julianday(OLD.decided_at) >= 365
    AND NEW.query_value = '' AND NEW.body = ''
    AND NEW.id = OLD.id AND NEW.call_id = OLD.call_id AND NEW.idx = OLD.idx
    AND NEW.request_id = OLD.request_id AND NEW.asked_by = OLD.asked_by AND NEW.decided_at = OLD.decided_at
    AND NEW.query_kind = OLD.query_kind AND NEW.as_of = OLD.as_of
    AND NEW.household_code IS OLD.household_code AND NEW.eligible = OLD.eligible
    AND NEW.policy_version = OLD.policy_version
)
BEGIN SELECT RAISE(ABORT, 'eligibility_decisions is append-only (a purge under the retention policy aside)'); END;

DROP TRIGGER eligibility_decision_runs_no_update;
CREATE TRIGGER eligibility_decision_runs_no_update BEFORE UPDATE ON eligibility_decision_runs
WHEN NOT (
    OLD.purged_by IS NULL AND NEW.purged_by IS NOT NULL AND NEW.purged_at IS NOT NULL
    AND julianday(NEW.purged_at) - julianday(OLD.decided_at) >= 365
    AND NEW.body = '' AND NEW.body_digest IS NOT NULL AND OLD.body_digest IS NULL
    AND NEW.id = OLD.id AND NEW.call_id = OLD.call_id AND NEW.first_idx = OLD.first_idx
    AND NEW.last_idx = OLD.last_idx AND NEW.request_id = OLD.request_id AND NEW.asked_by = OLD.asked_by
    AND NEW.decided_at = OLD.decided_at AND NEW.decisions = OLD.decisions
)
BEGIN SELECT RAISE(ABORT, 'eligibility_decision_runs is append-only (a purge under the retention policy aside)'); END;
