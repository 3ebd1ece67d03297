-- The operators' change feed: one row per event about an enrolled household, in the order
-- the events were recorded. Writers of events take one advisory lock (`telesub:feed`) until
-- they commit, so events become visible in `seq` order on every hub: a reader that has seen
-- an event has seen every earlier one.
CREATE TABLE feed_events (
    seq               BIGSERIAL PRIMARY KEY,
    operator          TEXT NOT NULL,
    enrollment_id     BIGINT NOT NULL,
    household_code    TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('REMOVED', 'CATEGORY_CHANGED', 'DETAILS_CHANGED', 'TRANSFERRED_AWAY')),
    effective_date    DATE NOT NULL,
    category          TEXT,
    previous_category TEXT,
    removal_reason    TEXT,
    batch_id          TEXT,
    recorded_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX feed_events_operator ON feed_events (operator, seq);
