SELECT customer, seq, log_offset, attempts, next_at, last_error
FROM handler_retries
WHERE handler = $1
