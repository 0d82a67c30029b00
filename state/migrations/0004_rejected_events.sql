-- Events that were ours (verified, routed) but that PostgreSQL would not store as a log row,
-- e.g. JSON with a \u0000 that jsonb refuses: kept raw with the reason, never silently lost.
CREATE TABLE rejected_events (
    source text NOT NULL,
    source_event_id text NOT NULL,
    customer text NOT NULL,
    type text NOT NULL,
    reason text NOT NULL,
    payload text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, source_event_id)
);
