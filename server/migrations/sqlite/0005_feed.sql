-- The operators' change feed: one row per event about an enrolled household, in the order
-- the events were recorded. Events are written in the transaction that causes them, one
-- writer at a time, so a reader that has seen an event has seen every earlier one.
CREATE TABLE feed_events (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    operator          TEXT NOT NULL,
    enrollment_id     INTEGER NOT NULL,
    household_code    TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('REMOVED', 'CATEGORY_CHANGED', 'DETAILS_CHANGED', 'TRANSFERRED_AWAY')),
    effective_date    TEXT NOT NULL,
    category          TEXT,
    previous_category TEXT,
    removal_reason    TEXT,
    batch_id          TEXT,
    recorded_at       TEXT NOT NULL
) STRICT;

CREATE INDEX feed_events_operator ON feed_events (operator, seq);
