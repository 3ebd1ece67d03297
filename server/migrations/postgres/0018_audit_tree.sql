-- The audit trail as a Merkle tree (RFC 9162), with signed checkpoints.
--
-- `attached`: the SHA-256 of what a call stored beside its record (what it looked up, the
-- decisions it gave); part of the record's bytes from this migration on (`telesub-audit-v2`).
-- `decisions_call`: the call id of those decisions, by which they are found again.
ALTER TABLE audit_log ADD COLUMN attached TEXT, ADD COLUMN decisions_call TEXT;

-- The tree's right edge (`size:hash:hash…`, the roots of the perfect subtrees covering the
-- records so far), kept with the chain head. NULL until the hub builds it from the records.
ALTER TABLE audit_head ADD COLUMN tree TEXT;

-- The perfect subtrees of every fourth level (16, 256, 4096, … records), as they complete.
CREATE TABLE audit_tree (
    level INTEGER NOT NULL CHECK (level > 0 AND level % 4 = 0),
    idx   BIGINT NOT NULL CHECK (idx >= 0),
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
);

-- Signed checkpoints: the tree's size and root, when and by which key, and the signed note.
CREATE TABLE audit_checkpoints (
    tree_size BIGINT PRIMARY KEY CHECK (tree_size >= 0),
    root_hash TEXT NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL,
    key_id    TEXT NOT NULL,
    note      TEXT NOT NULL
);

-- A call's subjects by its record, for checking them against the record.
CREATE INDEX audit_subjects_seq ON audit_subjects (seq);

-- What the trail covers is append-only too.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_tree_no_change BEFORE UPDATE OR DELETE ON audit_tree
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_tree_no_truncate BEFORE TRUNCATE ON audit_tree
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_subjects_no_change BEFORE UPDATE OR DELETE ON audit_subjects
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_subjects_no_truncate BEFORE TRUNCATE ON audit_subjects
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER eligibility_decisions_no_change BEFORE UPDATE OR DELETE ON eligibility_decisions
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER eligibility_decisions_no_truncate BEFORE TRUNCATE ON eligibility_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER eligibility_decision_runs_no_change BEFORE UPDATE OR DELETE ON eligibility_decision_runs
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER eligibility_decision_runs_no_truncate BEFORE TRUNCATE ON eligibility_decision_runs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
