-- Members, the certificates they have used, and the hash-chained audit trail.

CREATE TABLE members (
    code          TEXT PRIMARY KEY NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('LABOUR', 'OPERATOR', 'ICT', 'PROVINCE_COMMITTEE',
                                                'LOCALITY', 'EDUCATION', 'HEALTH')),
    unit_code     TEXT,
    status        TEXT NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    status_reason TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    CHECK ((role = 'LOCALITY') = (unit_code IS NOT NULL))
) STRICT;

CREATE TABLE member_certificates (
    member_code TEXT NOT NULL REFERENCES members (code),
    fingerprint TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    PRIMARY KEY (member_code, fingerprint)
) STRICT;

CREATE TABLE audit_log (
    seq              INTEGER PRIMARY KEY NOT NULL,
    at               TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    org_code         TEXT,
    cert_fingerprint TEXT,
    method           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    detail           TEXT NOT NULL,
    request_digest   TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
) STRICT;

CREATE INDEX audit_log_org_at ON audit_log (org_code, at);

-- The chain head: the last record's sequence number and hash. A truncated tail shows up as a
-- head that points past the last stored record.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The audit trail is append-only: the hub never changes or removes a record.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
