UPDATE replay_requests SET status = $2, result = $3::jsonb, updated_at = now() WHERE id = $1
