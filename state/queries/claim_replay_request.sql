-- Whoever claims a pending request first runs it (the leader, or the CLI that asked once the
-- leader is gone).
UPDATE replay_requests
SET status = 'running', claimed_by = $2, updated_at = now()
WHERE id = $1 AND status = 'pending'
RETURNING kind, params::text AS params
