SELECT id, kind, status, claimed_by, processed, total, result::text AS result,
       cancel_requested_at IS NOT NULL AS cancel_requested
FROM replay_requests
WHERE id = $1
