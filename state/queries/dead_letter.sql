SELECT id, handler, customer, seq, log_offset, source_event_id, reason, attempts, created_at,
       status, resolved_at, resolution, settled_at
FROM dead_letters
WHERE id = $1
