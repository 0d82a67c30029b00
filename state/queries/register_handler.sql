-- A handler seen for the first time starts at $2, or at the log head when $2 is NULL; one seen
-- before keeps its row. Returns the row either way (`new` says which).
WITH inserted AS (
    INSERT INTO handler_offsets (handler, start_offset, low_water)
    SELECT $1, s.start_offset, s.start_offset
    FROM (SELECT coalesce($2::bigint, (SELECT last_offset FROM log_head)) AS start_offset) AS s
    ON CONFLICT (handler) DO NOTHING
    RETURNING start_offset, low_water
)
SELECT start_offset, low_water, true AS new FROM inserted
UNION ALL
SELECT start_offset, low_water, false AS new FROM handler_offsets WHERE handler = $1
LIMIT 1
