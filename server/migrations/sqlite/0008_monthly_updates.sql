-- Operators' monthly subsidy updates and their reconciliation.

-- One row per list an operator submitted. `status` RECEIVING while the lines arrive and are
-- reconciled (reported as RECEIVED), then RECONCILED, and CONFIRMED, REJECTED or SUPERSEDED.
CREATE TABLE monthly_updates (
    id               INTEGER PRIMARY KEY,
    operator         TEXT NOT NULL,
    update_id        TEXT NOT NULL,
    period           TEXT NOT NULL,
    replaces_earlier INTEGER NOT NULL,
    note             TEXT NOT NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('RECEIVING', 'RECONCILED', 'CONFIRMED', 'REJECTED', 'SUPERSEDED')),
    content_digest   TEXT,
    -- Counts reconciliations of the list; a confirmation names the one it read.
    revision         INTEGER NOT NULL DEFAULT 0,
    -- A change to the register touched the period after the list was reconciled.
    stale            INTEGER NOT NULL DEFAULT 0,
    figures          TEXT,
    received_at      TEXT NOT NULL,
    reconciled_at    TEXT,
    superseded_by    TEXT,
    decided_by       TEXT,
    decided_at       TEXT,
    decision_note    TEXT,
    confirmed_scope  TEXT,
    confirmed_lines  INTEGER,
    confirmed_amount INTEGER,
    confirmed_digest TEXT,
    -- Confirmed lists: lines whose outcome a later change would alter (the confirmation stands).
    exceptions       INTEGER NOT NULL DEFAULT 0,
    exceptions_at    TEXT,
    request_id       TEXT NOT NULL,
    UNIQUE (operator, update_id)
) STRICT;

CREATE INDEX monthly_updates_period ON monthly_updates (period, operator);

-- The lines of a list as received, with the outcome of their reconciliation: `codes` holds
-- the discrepancy codes separated by spaces ('' when the line is OK), `detail` their messages.
-- `idle_months`: months without traffic up to and including this one. `later_detail`, on a
-- confirmed list, is the outcome the line would have now, when a later change altered it.
CREATE TABLE monthly_lines (
    update_ref         INTEGER NOT NULL REFERENCES monthly_updates (id) ON DELETE CASCADE,
    line_no            INTEGER NOT NULL,
    household_code     TEXT NOT NULL,
    phone_number       TEXT NOT NULL,
    commune_code       TEXT,
    line               TEXT NOT NULL,
    codes              TEXT NOT NULL,
    detail             TEXT,
    amount_claimed     INTEGER NOT NULL,
    amount_confirmable INTEGER NOT NULL,
    idle_months        INTEGER NOT NULL,
    later_detail       TEXT,
    PRIMARY KEY (update_ref, line_no)
) STRICT, WITHOUT ROWID;
