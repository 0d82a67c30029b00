UPDATE dead_letters SET settled_at = now() WHERE id = ANY($1::bigint[]) AND settled_at IS NULL
