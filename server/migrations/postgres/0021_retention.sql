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
ALTER TABLE eligibility_decisions ADD COLUMN purged_by TEXT, ADD COLUMN purged_at TIMESTAMPTZ;
ALTER TABLE eligibility_decision_runs
    ADD COLUMN purged_by TEXT, ADD COLUMN purged_at TIMESTAMPTZ, ADD COLUMN body_digest TEXT;
ALTER TABLE inspection_samples ADD COLUMN purged_by TEXT, ADD COLUMN purged_at TIMESTAMPTZ;

-- Decisions still kept, by age: a purge takes the oldest first without reading the rest (the
-- time only grows, so each insert lands at the index's end).
CREATE INDEX eligibility_decisions_kept ON eligibility_decisions (decided_at) WHERE purged_by IS NULL;
CREATE INDEX eligibility_decision_runs_kept ON eligibility_decision_runs (decided_at) WHERE purged_by IS NULL;

CREATE TABLE purged_households (
    household_code TEXT PRIMARY KEY,
    removed_on     DATE NOT NULL,
    removal_reason TEXT,
    purged_by      TEXT NOT NULL,
    purged_at      TIMESTAMPTZ NOT NULL
);

-- Decisions stay append-only, a purge aside: only the value asked and the answers may be
-- blanked (a run's answers leaving their digest), once, by a purge at least 365 days after
-- the decision; nothing else changes.
CREATE FUNCTION decision_purge_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    blanked CONSTANT text[] := ARRAY['query_value', 'body', 'purged_by', 'purged_at', 'body_digest'];
BEGIN
    IF OLD.purged_by IS NULL AND NEW.purged_by IS NOT NULL AND NEW.purged_at IS NOT NULL
        AND NEW.purged_at >= OLD.decided_at + interval '365 days'
        AND NEW.body = '' AND coalesce(to_jsonb(NEW) ->> 'query_value', '') = ''
        AND (TG_TABLE_NAME <> 'eligibility_decision_runs'
             OR (to_jsonb(NEW) ->> 'body_digest' IS NOT NULL AND to_jsonb(OLD) ->> 'body_digest' IS NULL))
        AND (to_jsonb(NEW) - blanked) = (to_jsonb(OLD) - blanked)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only (a purge under the retention policy aside)', TG_TABLE_NAME;
END;
$$;
DROP TRIGGER eligibility_decisions_no_change ON eligibility_decisions;
CREATE TRIGGER eligibility_decisions_no_delete BEFORE DELETE ON eligibility_decisions
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER eligibility_decisions_no_update BEFORE UPDATE ON eligibility_decisions
    FOR EACH ROW EXECUTE FUNCTION decision_purge_only();
DROP TRIGGER eligibility_decision_runs_no_change ON eligibility_decision_runs;
CREATE TRIGGER eligibility_decision_runs_no_delete BEFORE DELETE ON eligibility_decision_runs
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER eligibility_decision_runs_no_update BEFORE UPDATE ON eligibility_decision_runs
    FOR EACH ROW EXECUTE FUNCTION decision_purge_only();
