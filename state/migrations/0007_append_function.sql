-- Small appends in one round trip, and cheaper payload compression.

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
