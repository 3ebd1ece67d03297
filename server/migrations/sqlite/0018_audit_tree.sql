-- The audit trail as a Merkle tree (RFC 9162), with signed checkpoints.
--
-- `attached`: the SHA-256 of what a call stored beside its record (what it looked up, the
-- decisions it gave); part of the record's bytes from this migration on (`telesub-audit-v2`).
-- `decisions_call`: the call id of those decisions, by which they are found again.
ALTER TABLE audit_log ADD COLUMN attached TEXT;
ALTER TABLE audit_log ADD COLUMN decisions_call TEXT;

-- The tree's right edge (`size:hash:hash…`, the roots of the perfect subtrees covering the
-- records so far), kept with the chain head. NULL until the hub builds it from the records.
ALTER TABLE audit_head ADD COLUMN tree TEXT;

-- The perfect subtrees of every fourth level (16, 256, 4096, … records), as they complete.
CREATE TABLE audit_tree (
    level INTEGER NOT NULL CHECK (level > 0 AND level % 4 = 0),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

-- Signed checkpoints: the tree's size and root, when and by which key, and the signed note.
CREATE TABLE audit_checkpoints (
    tree_size INTEGER PRIMARY KEY NOT NULL CHECK (tree_size >= 0),
    root_hash TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    note      TEXT NOT NULL
) STRICT;

-- A call's subjects by its record, for checking them against the record.
CREATE INDEX audit_subjects_seq ON audit_subjects (seq);

-- What the trail covers is append-only too.
CREATE TRIGGER audit_tree_no_update BEFORE UPDATE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;
CREATE TRIGGER audit_tree_no_delete BEFORE DELETE ON audit_tree
BEGIN SELECT RAISE(ABORT, 'audit_tree is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_subjects_no_update BEFORE UPDATE ON audit_subjects
BEGIN SELECT RAISE(ABORT, 'audit_subjects is append-only'); END;
CREATE TRIGGER audit_subjects_no_delete BEFORE DELETE ON audit_subjects
BEGIN SELECT RAISE(ABORT, 'audit_subjects is append-only'); END;
CREATE TRIGGER eligibility_decisions_no_update BEFORE UPDATE ON eligibility_decisions
BEGIN SELECT RAISE(ABORT, 'eligibility_decisions is append-only'); END;
CREATE TRIGGER eligibility_decisions_no_delete BEFORE DELETE ON eligibility_decisions
BEGIN SELECT RAISE(ABORT, 'eligibility_decisions is append-only'); END;
CREATE TRIGGER eligibility_decision_runs_no_update BEFORE UPDATE ON eligibility_decision_runs
BEGIN SELECT RAISE(ABORT, 'eligibility_decision_runs is append-only'); END;
CREATE TRIGGER eligibility_decision_runs_no_delete BEFORE DELETE ON eligibility_decision_runs
BEGIN SELECT RAISE(ABORT, 'eligibility_decision_runs is append-only'); END;
