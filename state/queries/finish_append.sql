-- Closes an append after its rows were copied: source positions and the log head, in the
-- caller's transaction; the notification ($5 = the head before) is delivered at commit.
WITH positions AS (
    INSERT INTO source_positions AS p (source, channel, position, updated_at)
    SELECT t.source, t.channel, t.position, now()
    FROM unnest($2::text[], $3::text[], $4::text[]) AS t(source, channel, position)
    ON CONFLICT (source, channel) DO UPDATE
        SET position = excluded.position, updated_at = excluded.updated_at
    RETURNING 1
),
head AS (
    UPDATE log_head SET last_offset = $1 RETURNING last_offset
)
SELECT pg_notify('sfstripe_log', head.last_offset::text)
FROM head
WHERE head.last_offset > $5
