-- A policy version that has not yet taken effect may be withdrawn: it stays, marked with who
-- withdrew it, when and why, and never holds. Only versions not withdrawn need distinct
-- start dates (a withdrawn version's date is free for another).
ALTER TABLE policy_versions
    ADD COLUMN withdrawn_by TEXT,
    ADD COLUMN withdrawn_at TIMESTAMPTZ,
    ADD COLUMN withdrawal_reason TEXT,
    ADD CONSTRAINT policy_withdrawal_whole CHECK ((withdrawn_at IS NULL) = (withdrawal_reason IS NULL));
ALTER TABLE policy_versions DROP CONSTRAINT policy_versions_valid_from_key;
CREATE UNIQUE INDEX policy_versions_holding ON policy_versions (valid_from) WHERE withdrawn_at IS NULL;
