-- Device allocations: the Ministry's decision, the list of recipient households, its
-- approval by the provincial People's Committee, and the hand-over of each device.

-- One row per decision. `status` RECORDED → PROPOSED → SUBMITTED → APPROVED, or RETURNED
-- (and PROPOSED again on a new proposal). `revision` goes up with every change to the list.
CREATE TABLE device_allocations (
    id                INTEGER PRIMARY KEY,
    decision_number   TEXT NOT NULL UNIQUE,
    decision_date     TEXT NOT NULL,
    tablets           INTEGER NOT NULL CHECK (tablets >= 0),
    smartphones       INTEGER NOT NULL CHECK (smartphones >= 0),
    -- The split by unit as JSON: [{"unit": "…", "tablets": n, "smartphones": m}]; one entry
    -- with an empty unit for the whole province.
    quotas            TEXT NOT NULL,
    cash_amount       INTEGER NOT NULL,
    note              TEXT NOT NULL,
    status            TEXT NOT NULL
        CHECK (status IN ('RECORDED', 'PROPOSED', 'SUBMITTED', 'RETURNED', 'APPROVED')),
    revision          INTEGER NOT NULL DEFAULT 0,
    recorded_by       TEXT NOT NULL,
    recorded_at       TEXT NOT NULL,
    proposal_as_of    TEXT,
    policy_version    INTEGER,
    proposed_at       TEXT,
    eligible          INTEGER NOT NULL DEFAULT 0,
    recipients        INTEGER NOT NULL DEFAULT 0,
    proposal_digest   TEXT,
    list_digest       TEXT,
    submitted_by      TEXT,
    submitted_at      TEXT,
    approval_number   TEXT,
    decided_by        TEXT,
    decided_at        TEXT,
    decision_note     TEXT
) STRICT;

-- Households nominated for an allocation (e.g. by the education department).
CREATE TABLE device_nominations (
    allocation_id  INTEGER NOT NULL REFERENCES device_allocations (id),
    household_code TEXT NOT NULL,
    nominated_by   TEXT NOT NULL,
    reason         TEXT NOT NULL,
    nominated_at   TEXT NOT NULL,
    PRIMARY KEY (allocation_id, household_code)
) STRICT;

-- The places on the lists. A household holds at most one place over the whole programme.
CREATE TABLE device_recipients (
    household_code   TEXT PRIMARY KEY,
    allocation_id    INTEGER NOT NULL REFERENCES device_allocations (id),
    rank             INTEGER NOT NULL,
    unit_code        TEXT NOT NULL,
    commune_code     TEXT NOT NULL,
    district_code    TEXT,
    category         TEXT NOT NULL,
    priority_group   INTEGER NOT NULL,
    nominated        INTEGER NOT NULL,
    device_type      TEXT NOT NULL CHECK (device_type IN ('TABLET', 'SMARTPHONE')),
    head_name_masked TEXT NOT NULL,
    added            INTEGER NOT NULL,
    UNIQUE (allocation_id, rank)
) STRICT;

-- Every amendment of a draft list, kept.
CREATE TABLE device_amendments (
    id             INTEGER PRIMARY KEY,
    allocation_id  INTEGER NOT NULL REFERENCES device_allocations (id),
    revision       INTEGER NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('ADD', 'REMOVE')),
    household_code TEXT NOT NULL,
    device_type    TEXT,
    reason         TEXT NOT NULL,
    amended_by     TEXT NOT NULL,
    amended_at     TEXT NOT NULL
) STRICT;

CREATE INDEX device_amendments_allocation ON device_amendments (allocation_id, id);

-- Hand-overs: a device (with its serial number or IMEI) or the cash alternative. One per
-- household over the whole programme.
CREATE TABLE device_handovers (
    household_code    TEXT PRIMARY KEY,
    allocation_id     INTEGER NOT NULL REFERENCES device_allocations (id),
    kind              TEXT NOT NULL CHECK (kind IN ('DEVICE', 'CASH')),
    device_type       TEXT,
    serial_number     TEXT,
    imei              TEXT UNIQUE,
    cash_amount       INTEGER,
    phone_bought_on   TEXT,
    receipt_reference TEXT,
    handed_over_on    TEXT NOT NULL,
    received_by       TEXT NOT NULL,
    recorded_by       TEXT NOT NULL,
    recorded_at       TEXT NOT NULL,
    request_id        TEXT NOT NULL
) STRICT;
