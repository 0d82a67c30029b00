INSERT INTO credentials (name, value, updated_at) VALUES ($1, $2, now())
ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
