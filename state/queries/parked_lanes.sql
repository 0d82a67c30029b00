SELECT id, customer, seq, log_offset
FROM dead_letters
WHERE handler = $1 AND status = 'parked'
