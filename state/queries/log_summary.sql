SELECT h.last_offset AS head, e.ingested_at AS last_ingested_at
FROM log_head AS h
LEFT JOIN events AS e ON e.log_offset = h.last_offset
