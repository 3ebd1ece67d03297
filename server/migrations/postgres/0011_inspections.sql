-- Inspections of localities and operators: the inspection, its findings with their
-- follow-up, and the samples of the hub's data frozen for the team.

CREATE TABLE inspections (
    id                BIGSERIAL PRIMARY KEY,
    title             TEXT NOT NULL,
    basis             TEXT NOT NULL CHECK (basis IN ('YEARLY_PLAN', 'AUTHORITY_REQUEST')),
    requested_by      TEXT NOT NULL,
    -- JSON arrays: unit codes, operator codes, team members.
    subject_units     TEXT NOT NULL,
    subject_operators TEXT NOT NULL,
    team              TEXT NOT NULL,
    starts_on         DATE NOT NULL,
    ends_on           DATE NOT NULL,
    note              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('OPEN', 'CLOSED')),
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    conclusion        TEXT,
    closed_by         TEXT,
    closed_at         TIMESTAMPTZ,
    CHECK (starts_on <= ends_on)
);

CREATE TABLE inspection_findings (
    inspection_id      BIGINT NOT NULL REFERENCES inspections (id),
    number             BIGINT NOT NULL,
    severity           TEXT NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    subject            TEXT NOT NULL,
    description        TEXT NOT NULL,
    evidence_reference TEXT NOT NULL,
    required_action    TEXT NOT NULL,
    due_on             DATE NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('OPEN', 'IN_PROGRESS', 'RESOLVED')),
    recorded_by        TEXT NOT NULL,
    recorded_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (inspection_id, number)
);

-- Every status change of a finding.
CREATE TABLE inspection_finding_updates (
    inspection_id BIGINT NOT NULL,
    number        BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    status        TEXT NOT NULL,
    note          TEXT NOT NULL,
    updated_by    TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (inspection_id, number, seq),
    FOREIGN KEY (inspection_id, number) REFERENCES inspection_findings (inspection_id, number)
);

-- A sample as pulled: the draw's seed and what the hub held of each household (JSON).
CREATE TABLE inspection_samples (
    inspection_id BIGINT NOT NULL REFERENCES inspections (id),
    number        BIGINT NOT NULL,
    commune_code  TEXT NOT NULL,
    as_of         DATE NOT NULL,
    size          BIGINT NOT NULL,
    population    BIGINT NOT NULL,
    seed          TEXT NOT NULL,
    body          TEXT NOT NULL,
    pulled_by     TEXT NOT NULL,
    pulled_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (inspection_id, number)
);
