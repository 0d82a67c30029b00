-- Cancel a replay request: a pending one at once (nobody runs it any more), a running one is
-- asked to stop (its runner records 'cancelled' at a safe point). Returns the status after
-- this, nothing when the request is unknown or already finished.
UPDATE replay_requests
SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,
    result = CASE
        WHEN status = 'pending' THEN jsonb_build_object('cancelled', true, 'started', false)
        ELSE result
    END,
    cancel_requested_at = coalesce(cancel_requested_at, now()),
    updated_at = now()
WHERE id = $1 AND status IN ('pending', 'running')
RETURNING status
