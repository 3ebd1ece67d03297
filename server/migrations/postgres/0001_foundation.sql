-- Members, the certificates they have used, and the hash-chained audit trail.

CREATE TABLE members (
    code          TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('LABOUR', 'OPERATOR', 'ICT', 'PROVINCE_COMMITTEE',
                                                'LOCALITY', 'EDUCATION', 'HEALTH')),
    unit_code     TEXT,
    status        TEXT NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    status_reason TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CHECK ((role = 'LOCALITY') = (unit_code IS NOT NULL))
);

CREATE TABLE member_certificates (
    member_code TEXT NOT NULL REFERENCES members (code),
    fingerprint TEXT NOT NULL,
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (member_code, fingerprint)
);

CREATE TABLE audit_log (
    seq              BIGINT PRIMARY KEY,
    at               TIMESTAMPTZ NOT NULL,
    request_id       TEXT NOT NULL,
    org_code         TEXT,
    cert_fingerprint TEXT,
    method           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    detail           TEXT NOT NULL,
    request_digest   TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
);

CREATE INDEX audit_log_org_at ON audit_log (org_code, at);

-- The chain head: the last record's sequence number and hash. Appenders lock this row, so
-- several hubs on one database extend one chain in turn.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The audit trail is append-only: the hub never changes or removes a record.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
