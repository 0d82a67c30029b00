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

-- Payloads (1.5-4 KB of JSON) pass the TOAST threshold, so each one is compressed on the way
-- in; lz4 does it several times faster than pglz, for a few per cent more space. Servers
-- built without lz4 keep pglz.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_settings
        WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)
    ) THEN
        ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
    END IF;
END
$$;


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

-- Credentials sfstripe must remember across restarts, such as a rotated Salesforce refresh token.
CREATE TABLE credentials (
    name text PRIMARY KEY,
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per handler ever run: the offset it started from (the log head when it was first
-- seen, unless configured) and its low-water offset: every event at or below it is applied,
-- unwanted, or belongs to a parked customer. A restart reads the log from the lowest one.
CREATE TABLE handler_offsets (
    handler text PRIMARY KEY,
    start_offset bigint NOT NULL,
    low_water bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Per handler and customer (a lane), the last seq applied or passed as unwanted. It only moves
-- forward: a restart skips every event of the lane at or below it.
CREATE TABLE handler_checkpoints (
    handler text NOT NULL,
    customer text NOT NULL,
    last_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, customer)
);

-- The failing event of a lane and when to try it again; a lane is strictly ordered, so it has at
-- most one. Kept here so that the backoff schedule survives a restart.
CREATE TABLE handler_retries (
    handler text NOT NULL,
    customer text NOT NULL,
    seq bigint NOT NULL,
    log_offset bigint NOT NULL,
    attempts integer NOT NULL CHECK (attempts >= 1),
    next_at timestamptz NOT NULL,
    last_error text NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, customer)
);

-- Events a handler gave up on; while one is `parked` its lane waits (order matters for billing).
-- An operator retries or skips it; `settled_at` is set once the lane has caught up after that.
CREATE TABLE dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handler text NOT NULL,
    customer text NOT NULL,
    seq bigint NOT NULL,
    log_offset bigint NOT NULL,
    source_event_id text NOT NULL,
    reason text NOT NULL,
    attempts integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'retried', 'skipped')),
    resolved_at timestamptz,
    resolution text,
    settled_at timestamptz
);
CREATE UNIQUE INDEX dead_letters_one_parked_per_lane
    ON dead_letters (handler, customer) WHERE status = 'parked';
CREATE INDEX dead_letters_unsettled ON dead_letters (handler) WHERE settled_at IS NULL;

-- Replays asked of the running leader (log replays and upstream position moves); the CLI that
-- asked follows `processed`/`total` and reads `result`.
CREATE TABLE replay_requests (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('log', 'position')),
    params jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed')),
    claimed_by text,
    processed bigint NOT NULL DEFAULT 0,
    total bigint,
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX replay_requests_pending ON replay_requests (id) WHERE status = 'pending';
-- Cancellation (migration 0006): a pending request is cancelled at once, a running one is asked
-- to stop (cancel_requested_at) and its runner records 'cancelled' at a safe point.
ALTER TABLE replay_requests DROP CONSTRAINT replay_requests_status_check;
ALTER TABLE replay_requests ADD CONSTRAINT replay_requests_status_check
    CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled'));
ALTER TABLE replay_requests ADD COLUMN cancel_requested_at timestamptz;

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

-- What sfstripe last wrote to each field of each record on either side: a change that comes
-- back with the same value is sfstripe's own echo, not a new change.
CREATE TABLE sync_writes (
    side text NOT NULL CHECK (side IN ('salesforce', 'stripe')),
    record_id text NOT NULL,
    field text NOT NULL,
    value jsonb NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (side, record_id, field)
);

-- The latest applied state of the Stripe objects behind an Account's billing status (invoices,
-- subscriptions, the customer, payment method references: never card data), so that events
-- arriving out of order are applied by monotonic rules.
CREATE TABLE stripe_objects (
    object_id text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('invoice', 'subscription', 'customer', 'payment_method')),
    stripe_customer text NOT NULL,
    event_created bigint NOT NULL,
    status text,
    body jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_objects_customer_idx ON stripe_objects (stripe_customer, kind);

-- The append of state/log.py in one statement, so that a group commit costs one round trip:
-- called outside a transaction block, the call is its own transaction, committed before the
-- answer is sent. Same rules: the log_head row lock first (held until commit, so offsets are
-- commit-ordered; each later statement sees every append committed before it was granted),
-- inputs whose (source, source_event_id) is stored or came earlier in the batch cost no row,
-- aliases resolve through identity_links, seq continues each stream without a gap, positions
-- and the head move in the same transaction and the head's notification goes out at commit.
-- Links are made first. A link that needs more than a new identity_links row (the alias is
-- linked to another customer, or already has a stream of its own that marker events must
-- close) raises SFS01 before anything is written: the caller takes the general path.
-- Returns one row per stored input: its 1-based position in the batch, offset, stream, seq.
CREATE FUNCTION append_events(
    p_customers text[],
    p_sources text[],
    p_event_ids text[],
    p_types text[],
    p_object_types text[],
    p_object_ids text[],
    p_occurred_at timestamptz[],
    p_payloads text[],
    p_link_aliases text[],
    p_link_customers text[],
    p_position_sources text[],
    p_position_channels text[],
    p_positions text[]
) RETURNS TABLE (input_ord bigint, stored_offset bigint, stored_customer text, stored_seq bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    head bigint;
    stored bigint;
BEGIN
    SELECT h.last_offset INTO head FROM log_head AS h FOR UPDATE;

    -- Every probe below is a subquery with LIMIT 1, so that it stays an index look-up
    -- whatever the statistics say (plans are cached for the session).
    IF cardinality(p_link_aliases) > 0 THEN
        IF EXISTS (
            SELECT 1
            FROM unnest(p_link_aliases, p_link_customers) AS k(alias, customer)
            LEFT JOIN LATERAL (
                SELECT l.customer FROM identity_links AS l WHERE l.alias = k.alias LIMIT 1
            ) AS linked ON true
            LEFT JOIN LATERAL (
                SELECT e.seq FROM events AS e WHERE e.customer = k.alias LIMIT 1
            ) AS history ON true
            WHERE linked.customer IS DISTINCT FROM k.customer
              AND (linked.customer IS NOT NULL OR history.seq IS NOT NULL)
        ) OR (
            SELECT count(DISTINCT k.alias) <> count(DISTINCT (k.alias, k.customer))
            FROM unnest(p_link_aliases, p_link_customers) AS k(alias, customer)
        ) THEN
            RAISE EXCEPTION 'a link needs the general append path' USING ERRCODE = 'SFS01';
        END IF;
        INSERT INTO identity_links (alias, customer)
        SELECT DISTINCT k.alias, k.customer
        FROM unnest(p_link_aliases, p_link_customers) AS k(alias, customer)
        ON CONFLICT (alias) DO NOTHING;
    END IF;

    RETURN QUERY
    WITH fresh AS (
        SELECT DISTINCT ON (i.source, i.event_id) i.ord::int AS ord, i.customer
        FROM unnest(p_customers, p_sources, p_event_ids)
            WITH ORDINALITY AS i(customer, source, event_id, ord)
        LEFT JOIN LATERAL (
            SELECT 1 AS found FROM events AS e
            WHERE e.source = i.source AND e.source_event_id = i.event_id
            LIMIT 1
        ) AS stored ON true
        WHERE stored.found IS NULL
        ORDER BY i.source, i.event_id, i.ord
    ),
    routed AS (
        SELECT f.ord,
               coalesce(
                   (SELECT l.customer FROM identity_links AS l WHERE l.alias = f.customer LIMIT 1),
                   f.customer
               ) AS stream
        FROM fresh AS f
    ),
    numbered AS (
        SELECT r.ord, r.stream,
               head + row_number() OVER (ORDER BY r.ord) AS log_offset,
               row_number() OVER (PARTITION BY r.stream ORDER BY r.ord) AS n
        FROM routed AS r
    ),
    planned AS (
        SELECT n.ord, n.log_offset, n.stream,
               n.n + coalesce(
                   (SELECT e.seq FROM events AS e WHERE e.customer = n.stream
                    ORDER BY e.seq DESC LIMIT 1),
                   0
               ) AS seq
        FROM numbered AS n
    ),
    inserted AS (
        INSERT INTO events (
            log_offset, customer, seq, source, source_event_id, type, object_type, object_id,
            occurred_at, payload
        )
        SELECT p.log_offset, p.stream, p.seq, p_sources[p.ord], p_event_ids[p.ord],
               p_types[p.ord], p_object_types[p.ord], p_object_ids[p.ord],
               p_occurred_at[p.ord], p_payloads[p.ord]::jsonb
        FROM planned AS p
    )
    SELECT p.ord::bigint, p.log_offset, p.stream, p.seq FROM planned AS p;
    GET DIAGNOSTICS stored = ROW_COUNT;

    IF cardinality(p_position_sources) > 0 THEN
        INSERT INTO source_positions AS sp (source, channel, position, updated_at)
        SELECT t.source, t.channel, t.position, now()
        FROM unnest(p_position_sources, p_position_channels, p_positions)
            AS t(source, channel, position)
        ON CONFLICT (source, channel) DO UPDATE
            SET position = excluded.position, updated_at = excluded.updated_at;
    END IF;

    IF stored > 0 THEN
        UPDATE log_head SET last_offset = head + stored;
        PERFORM pg_notify('sfstripe_log', (head + stored)::text);
    END IF;
END
$$;
