-- Administrative units, household batches and the household register with its history.

-- One row per version of a unit: a code keeps its identity for ever, while its name or
-- parent may change from a date (as when communes kept their codes in the 2025 merger).
-- `valid_from` NULL: since before the hub's records; `valid_to` NULL: still valid.
CREATE TABLE admin_units (
    id             BIGSERIAL PRIMARY KEY,
    code           TEXT NOT NULL,
    level          TEXT NOT NULL CHECK (level IN ('PROVINCE', 'DISTRICT', 'COMMUNE')),
    name           TEXT NOT NULL,
    parent_code    TEXT,
    valid_from     DATE,
    valid_to       DATE,
    successor_code TEXT,
    UNIQUE (code, valid_from),
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from < valid_to)
);

-- One row per batch; RECEIVING while its records are staged, APPLIED once in the register.
CREATE TABLE household_batches (
    seq            BIGSERIAL PRIMARY KEY,
    batch_id       TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('DELTA', 'SNAPSHOT')),
    review_period  TEXT NOT NULL,
    effective_date DATE NOT NULL,
    note           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('RECEIVING', 'APPLIED')),
    content_digest TEXT,
    records        BIGINT NOT NULL DEFAULT 0,
    added          BIGINT NOT NULL DEFAULT 0,
    changed        BIGINT NOT NULL DEFAULT 0,
    removed        BIGINT NOT NULL DEFAULT 0,
    unchanged      BIGINT NOT NULL DEFAULT 0,
    pushed_by      TEXT NOT NULL,
    received_at    TIMESTAMPTZ NOT NULL,
    applied_at     TIMESTAMPTZ
);

-- Records of a batch being received; emptied when the batch is applied or discarded.
-- Unlogged: staging is rebuilt by a retry after a crash, never recovered.
CREATE UNLOGGED TABLE batch_staging (
    batch_id           TEXT NOT NULL,
    idx                BIGINT NOT NULL,
    household_code     TEXT NOT NULL,
    effective_date     DATE NOT NULL,
    removal_reason     TEXT,
    removal_note       TEXT,
    data               TEXT,
    content_hash       TEXT,
    commune_code       TEXT,
    certificate_number TEXT,
    PRIMARY KEY (batch_id, idx)
);

CREATE INDEX batch_staging_household ON batch_staging (batch_id, household_code);

-- What applying a batch does to each household, decided before anything is written.
CREATE UNLOGGED TABLE batch_outcomes (
    batch_id       TEXT NOT NULL,
    idx            BIGINT NOT NULL,
    household_code TEXT NOT NULL,
    effective_date DATE NOT NULL,
    open_from      DATE,
    outcome        TEXT NOT NULL,
    PRIMARY KEY (batch_id, idx)
);

CREATE INDEX batch_outcomes_outcome ON batch_outcomes (batch_id, outcome);

-- Every state of every household: valid from `valid_from` to the day before `valid_to`
-- (open-ended when NULL). A removal is a state too: `removal_reason` set, `data` the last
-- data the household had.
CREATE TABLE household_versions (
    id                 BIGSERIAL PRIMARY KEY,
    household_code     TEXT NOT NULL,
    valid_from         DATE NOT NULL,
    valid_to           DATE,
    removal_reason     TEXT,
    removal_note       TEXT,
    data               TEXT NOT NULL,
    content_hash       TEXT NOT NULL,
    commune_code       TEXT NOT NULL,
    certificate_number TEXT,
    batch_id           TEXT NOT NULL,
    recorded_at        TIMESTAMPTZ NOT NULL,
    UNIQUE (household_code, valid_from)
);

CREATE INDEX household_versions_open ON household_versions (household_code) WHERE valid_to IS NULL;
CREATE INDEX household_versions_certificate ON household_versions (certificate_number)
    WHERE certificate_number IS NOT NULL;

-- States replaced by a later batch that recorded a different state for the same day:
-- kept, so that what the register said before stays answerable.
CREATE TABLE household_versions_superseded (
    household_code     TEXT NOT NULL,
    valid_from         DATE NOT NULL,
    valid_to           DATE,
    removal_reason     TEXT,
    removal_note       TEXT,
    data               TEXT NOT NULL,
    content_hash       TEXT NOT NULL,
    batch_id           TEXT NOT NULL,
    recorded_at        TIMESTAMPTZ NOT NULL,
    superseded_by      TEXT NOT NULL,
    superseded_at      TIMESTAMPTZ NOT NULL
);

-- Members' citizen IDs, one row per member of each household state (removal states too, so
-- that a removed household is found with its removal). A row's dates are its state's.
CREATE TABLE household_citizens (
    citizen_id TEXT NOT NULL,
    version_id BIGINT NOT NULL,
    PRIMARY KEY (citizen_id, version_id)
);

