SELECT handler, customer, id, seq, created_at
FROM dead_letters
WHERE status = 'parked'
ORDER BY handler, customer
LIMIT $1
