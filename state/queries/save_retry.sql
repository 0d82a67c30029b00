INSERT INTO handler_retries AS r
    (handler, customer, seq, log_offset, attempts, next_at, last_error)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (handler, customer) DO UPDATE
    SET seq = excluded.seq,
        log_offset = excluded.log_offset,
        attempts = excluded.attempts,
        next_at = excluded.next_at,
        last_error = excluded.last_error,
        first_failed_at = CASE WHEN r.seq = excluded.seq THEN r.first_failed_at ELSE now() END
