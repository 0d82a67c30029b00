-- Unpark: by id ($1) or every parked lane of a customer ($2). The dispatcher re-runs each lane
-- from its checkpoint, that is from the dead letter itself.
UPDATE dead_letters
SET status = 'retried', resolved_at = now()
WHERE status = 'parked' AND (id = $1 OR customer = $2)
RETURNING id, handler, customer, seq, log_offset, source_event_id, reason, attempts, created_at,
          status, resolved_at, resolution, settled_at
