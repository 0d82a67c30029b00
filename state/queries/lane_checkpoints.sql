SELECT customer, last_seq
FROM handler_checkpoints
WHERE handler = $1 AND customer = ANY($2::text[])
