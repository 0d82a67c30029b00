-- One customer's events after seq $2 that are at or below offset $3, in seq order.
SELECT log_offset, customer, seq, source, source_event_id, type, object_type, object_id,
       occurred_at, ingested_at, payload::text AS payload
FROM events
WHERE customer = $1 AND seq > $2 AND log_offset <= $3
ORDER BY seq
LIMIT $4
