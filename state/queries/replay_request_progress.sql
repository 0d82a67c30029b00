UPDATE replay_requests SET processed = $2, total = $3, updated_at = now() WHERE id = $1
