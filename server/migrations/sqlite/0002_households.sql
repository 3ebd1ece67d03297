-- Administrative units, household batches and the household register with its history.

-- One row per version of a unit: a code keeps its identity for ever, while its name or
-- parent may change from a date (as when communes kept their codes in the 2025 merger).
-- `valid_from` NULL: since before the hub's records; `valid_to` NULL: still valid.
CREATE TABLE admin_units (
    id             INTEGER PRIMARY KEY,
    code           TEXT NOT NULL,
    level          TEXT NOT NULL CHECK (level IN ('PROVINCE', 'DISTRICT', 'COMMUNE')),
    name           TEXT NOT NULL,
    parent_code    TEXT,
    valid_from     TEXT,
    valid_to       TEXT,
    successor_code TEXT,
    UNIQUE (code, valid_from),
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_from < valid_to)
) STRICT;

-- One row per batch; RECEIVING while its records are staged, APPLIED once in the register.
CREATE TABLE household_batches (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id       TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL CHECK (kind IN ('DELTA', 'SNAPSHOT')),
    review_period  TEXT NOT NULL,
    effective_date TEXT NOT NULL,
    note           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('RECEIVING', 'APPLIED')),
    content_digest TEXT,
    records        INTEGER NOT NULL DEFAULT 0,
    added          INTEGER NOT NULL DEFAULT 0,
    changed        INTEGER NOT NULL DEFAULT 0,
    removed        INTEGER NOT NULL DEFAULT 0,
    unchanged      INTEGER NOT NULL DEFAULT 0,
    pushed_by      TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    applied_at     TEXT
) STRICT;

-- The records of batches being received (batch_staging, batch_outcomes) live in a separate
-- file attached to the writing connection: see storage/sqlite.rs.

-- Every state of every household: valid from `valid_from` to the day before `valid_to`
-- (open-ended when NULL). A removal is a state too: `removal_reason` set, `data` the last
-- data the household had.
CREATE TABLE household_versions (
    id                 INTEGER PRIMARY KEY,
    household_code     TEXT NOT NULL,
    valid_from         TEXT NOT NULL,
    valid_to           TEXT,
    removal_reason     TEXT,
    removal_note       TEXT,
    data               TEXT NOT NULL,
    content_hash       TEXT NOT NULL,
    commune_code       TEXT NOT NULL,
    certificate_number TEXT,
    batch_id           TEXT NOT NULL,
    recorded_at        TEXT NOT NULL
) STRICT;

-- Rows are wide (a household's data): kept in a rowid table, found through this index.
CREATE UNIQUE INDEX household_versions_key ON household_versions (household_code, valid_from);

CREATE INDEX household_versions_certificate ON household_versions (certificate_number)
    WHERE certificate_number IS NOT NULL;

-- States replaced by a later batch that recorded a different state for the same day:
-- kept, so that what the register said before stays answerable.
CREATE TABLE household_versions_superseded (
    household_code     TEXT NOT NULL,
    valid_from         TEXT NOT NULL,
    valid_to           TEXT,
    removal_reason     TEXT,
    removal_note       TEXT,
    data               TEXT NOT NULL,
    content_hash       TEXT NOT NULL,
    batch_id           TEXT NOT NULL,
    recorded_at        TEXT NOT NULL,
    superseded_by      TEXT NOT NULL,
    superseded_at      TEXT NOT NULL
) STRICT;

-- Members' citizen IDs, one row per member of each household state (removal states too, so
-- that a removed household is found with its removal). A row's dates are its state's.
CREATE TABLE household_citizens (
    citizen_id TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    PRIMARY KEY (citizen_id, version_id)
) STRICT, WITHOUT ROWID;

