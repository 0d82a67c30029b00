-- Give up on an event: its retry schedule ends, earlier dead letters of the lane that were
-- retried or skipped are settled (the lane is parked again), and a parked dead letter is added.
WITH cleared AS (
    DELETE FROM handler_retries WHERE handler = $1 AND customer = $2
),
settled AS (
    UPDATE dead_letters SET settled_at = now()
    WHERE handler = $1 AND customer = $2 AND status <> 'parked' AND settled_at IS NULL
)
INSERT INTO dead_letters (handler, customer, seq, log_offset, source_event_id, reason, attempts)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
