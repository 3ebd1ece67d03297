-- The register of subsidised subscriber lines, and the operators' idempotent writes to it.

-- One row per enrolment: a household's subsidised line with one operator, from `start_date`
-- until the day before `end_date` (running while NULL).
CREATE TABLE enrollments (
    id                    INTEGER PRIMARY KEY,
    operator              TEXT NOT NULL,
    household_code        TEXT NOT NULL,
    subscriber_citizen_id TEXT NOT NULL,
    phone_number          TEXT NOT NULL,
    service               TEXT NOT NULL CHECK (service IN ('MOBILE', 'FIXED_BROADBAND')),
    start_date            TEXT NOT NULL,
    end_date              TEXT,
    end_reason            TEXT,
    end_note              TEXT,
    decision_id           TEXT NOT NULL,
    transfer_reference    TEXT,
    recorded_at           TEXT NOT NULL,
    ended_at              TEXT,
    CHECK (end_date IS NULL OR end_date > start_date)
) STRICT;

CREATE INDEX enrollments_household ON enrollments (household_code);
CREATE INDEX enrollments_phone ON enrollments (phone_number);
CREATE INDEX enrollments_operator ON enrollments (operator, id);

-- Each operator write by its idempotency key: what it asked (digest) and what it did.
CREATE TABLE enrollment_writes (
    operator          TEXT NOT NULL,
    idempotency_key   TEXT NOT NULL,
    request_digest    TEXT NOT NULL,
    enrollment_id     INTEGER NOT NULL,
    previous_end_date TEXT,
    PRIMARY KEY (operator, idempotency_key)
) STRICT;
