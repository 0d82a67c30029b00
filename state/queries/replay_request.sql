SELECT id, kind, status, claimed_by, processed, total, result::text AS result
FROM replay_requests
WHERE id = $1
