INSERT INTO replay_requests (kind, params) VALUES ($1, $2::jsonb) RETURNING id
