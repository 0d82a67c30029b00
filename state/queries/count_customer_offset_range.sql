SELECT count(*) FROM events WHERE customer = $1 AND log_offset >= $2 AND log_offset <= $3
