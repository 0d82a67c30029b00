-- Dead letters an operator retried or skipped whose lane has not caught up yet.
SELECT id, customer, seq, log_offset, status
FROM dead_letters
WHERE handler = $1 AND status <> 'parked' AND settled_at IS NULL
