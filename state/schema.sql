-- The declared schema: what all migrations together must build (tests compare the two).

-- One row whose lock serialises appenders: offsets are handed out under it and the lock is
-- released only after commit, so offset order is commit order (readers never see a late lower
-- offset).
CREATE TABLE log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_offset bigint NOT NULL
);
INSERT INTO log_head (singleton, last_offset) VALUES (true, 0);

CREATE TABLE events (
    log_offset bigint PRIMARY KEY,
    customer text NOT NULL,
    seq bigint NOT NULL CHECK (seq >= 1),
    source text NOT NULL CHECK (source IN ('salesforce', 'stripe', 'sfstripe')),
    source_event_id text NOT NULL,
    type text NOT NULL,
    object_type text,
    object_id text,
    occurred_at timestamptz NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    payload jsonb NOT NULL,
    CONSTRAINT events_source_event_unique UNIQUE (source, source_event_id),
    CONSTRAINT events_customer_seq_unique UNIQUE (customer, seq)
);


-- Where each source connection stands (Salesforce replay id per channel, Stripe cursor),
-- written in the same transaction as the events it covers.
CREATE TABLE source_positions (
    source text NOT NULL,
    channel text NOT NULL,
    position text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, channel)
);

-- Aliases (stripe:<cus id>, contact:<id>) of an account's stream; appends resolve through them.
CREATE TABLE identity_links (
    alias text PRIMARY KEY,
    customer text NOT NULL,
    linked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identity_links_customer_idx ON identity_links (customer);
