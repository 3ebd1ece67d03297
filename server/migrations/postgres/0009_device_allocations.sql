-- Device allocations: the Ministry's decision, the list of recipient households, its
-- approval by the provincial People's Committee, and the hand-over of each device.

-- One row per decision. `status` RECORDED → PROPOSED → SUBMITTED → APPROVED, or RETURNED
-- (and PROPOSED again on a new proposal). `revision` goes up with every change to the list.
CREATE TABLE device_allocations (
    id                BIGSERIAL PRIMARY KEY,
    decision_number   TEXT NOT NULL UNIQUE,
    decision_date     DATE NOT NULL,
    tablets           BIGINT NOT NULL CHECK (tablets >= 0),
    smartphones       BIGINT NOT NULL CHECK (smartphones >= 0),
    -- The split by unit as JSON: [{"unit": "…", "tablets": n, "smartphones": m}]; one entry
    -- with an empty unit for the whole province.
    quotas            TEXT NOT NULL,
    cash_amount       BIGINT NOT NULL,
    note              TEXT NOT NULL,
    status            TEXT NOT NULL
        CHECK (status IN ('RECORDED', 'PROPOSED', 'SUBMITTED', 'RETURNED', 'APPROVED')),
    revision          BIGINT NOT NULL DEFAULT 0,
    recorded_by       TEXT NOT NULL,
    recorded_at       TIMESTAMPTZ NOT NULL,
    proposal_as_of    DATE,
    policy_version    BIGINT,
    proposed_at       TIMESTAMPTZ,
    eligible          BIGINT NOT NULL DEFAULT 0,
    recipients        BIGINT NOT NULL DEFAULT 0,
    proposal_digest   TEXT,
    list_digest       TEXT,
    submitted_by      TEXT,
    submitted_at      TIMESTAMPTZ,
    approval_number   TEXT,
    decided_by        TEXT,
    decided_at        TIMESTAMPTZ,
    decision_note     TEXT
);

-- Households nominated for an allocation (e.g. by the education department).
CREATE TABLE device_nominations (
    allocation_id  BIGINT NOT NULL REFERENCES device_allocations (id),
    household_code TEXT NOT NULL,
    nominated_by   TEXT NOT NULL,
    reason         TEXT NOT NULL,
    nominated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (allocation_id, household_code)
);

-- The places on the lists. A household holds at most one place over the whole programme.
CREATE TABLE device_recipients (
    household_code   TEXT PRIMARY KEY,
    allocation_id    BIGINT NOT NULL REFERENCES device_allocations (id),
    rank             BIGINT NOT NULL,
    unit_code        TEXT NOT NULL,
    commune_code     TEXT NOT NULL,
    district_code    TEXT,
    category         TEXT NOT NULL,
    priority_group   BIGINT NOT NULL,
    nominated        BOOLEAN NOT NULL,
    device_type      TEXT NOT NULL CHECK (device_type IN ('TABLET', 'SMARTPHONE')),
    head_name_masked TEXT NOT NULL,
    added            BOOLEAN NOT NULL,
    UNIQUE (allocation_id, rank)
);

-- Every amendment of a draft list, kept.
CREATE TABLE device_amendments (
    id             BIGSERIAL PRIMARY KEY,
    allocation_id  BIGINT NOT NULL REFERENCES device_allocations (id),
    revision       BIGINT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('ADD', 'REMOVE')),
    household_code TEXT NOT NULL,
    device_type    TEXT,
    reason         TEXT NOT NULL,
    amended_by     TEXT NOT NULL,
    amended_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX device_amendments_allocation ON device_amendments (allocation_id, id);

-- Hand-overs: a device (with its serial number or IMEI) or the cash alternative. One per
-- household over the whole programme.
CREATE TABLE device_handovers (
    household_code    TEXT PRIMARY KEY,
    allocation_id     BIGINT NOT NULL REFERENCES device_allocations (id),
    kind              TEXT NOT NULL CHECK (kind IN ('DEVICE', 'CASH')),
    device_type       TEXT,
    serial_number     TEXT,
    imei              TEXT UNIQUE,
    cash_amount       BIGINT,
    phone_bought_on   DATE,
    receipt_reference TEXT,
    handed_over_on    DATE NOT NULL,
    received_by       TEXT NOT NULL,
    recorded_by       TEXT NOT NULL,
    recorded_at       TIMESTAMPTZ NOT NULL,
    request_id        TEXT NOT NULL
);
