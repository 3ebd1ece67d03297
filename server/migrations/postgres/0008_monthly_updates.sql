-- Operators' monthly subsidy updates and their reconciliation.

-- One row per list an operator submitted. `status` RECEIVING while the lines arrive and are
-- reconciled (reported as RECEIVED), then RECONCILED, and CONFIRMED, REJECTED or SUPERSEDED.
CREATE TABLE monthly_updates (
    id               BIGSERIAL PRIMARY KEY,
    operator         TEXT NOT NULL,
    update_id        TEXT NOT NULL,
    period           TEXT NOT NULL,
    replaces_earlier BOOLEAN NOT NULL,
    note             TEXT NOT NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('RECEIVING', 'RECONCILED', 'CONFIRMED', 'REJECTED', 'SUPERSEDED')),
    content_digest   TEXT,
    -- Counts reconciliations of the list; a confirmation names the one it read.
    revision         BIGINT NOT NULL DEFAULT 0,
    -- A change to the register touched the period after the list was reconciled.
    stale            BOOLEAN NOT NULL DEFAULT FALSE,
    figures          TEXT,
    received_at      TIMESTAMPTZ NOT NULL,
    reconciled_at    TIMESTAMPTZ,
    superseded_by    TEXT,
    decided_by       TEXT,
    decided_at       TIMESTAMPTZ,
    decision_note    TEXT,
    confirmed_scope  TEXT,
    confirmed_lines  BIGINT,
    confirmed_amount BIGINT,
    confirmed_digest TEXT,
    -- Confirmed lists: lines whose outcome a later change would alter (the confirmation stands).
    exceptions       BIGINT NOT NULL DEFAULT 0,
    exceptions_at    TIMESTAMPTZ,
    request_id       TEXT NOT NULL,
    UNIQUE (operator, update_id)
);

CREATE INDEX monthly_updates_period ON monthly_updates (period, operator);

-- The lines of a list as received, with the outcome of their reconciliation: `codes` holds
-- the discrepancy codes separated by spaces ('' when the line is OK), `detail` their messages.
-- `idle_months`: months without traffic up to and including this one. `later_detail`, on a
-- confirmed list, is the outcome the line would have now, when a later change altered it.
CREATE TABLE monthly_lines (
    update_ref         BIGINT NOT NULL REFERENCES monthly_updates (id) ON DELETE CASCADE,
    line_no            BIGINT NOT NULL,
    household_code     TEXT NOT NULL,
    phone_number       TEXT NOT NULL,
    commune_code       TEXT,
    line               TEXT NOT NULL,
    codes              TEXT NOT NULL,
    detail             TEXT,
    amount_claimed     BIGINT NOT NULL,
    amount_confirmable BIGINT NOT NULL,
    idle_months        BIGINT NOT NULL,
    later_detail       TEXT,
    PRIMARY KEY (update_ref, line_no)
);
