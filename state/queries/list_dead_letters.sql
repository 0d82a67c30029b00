-- Dead letters, oldest first; $1 = a status to keep, NULL for all.
SELECT id, handler, customer, seq, log_offset, source_event_id, reason, attempts, created_at,
       status, resolved_at, resolution, settled_at
FROM dead_letters
WHERE $1::text IS NULL OR status = $1
ORDER BY id
