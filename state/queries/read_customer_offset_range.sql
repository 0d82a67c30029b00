-- One customer's events with $2 < offset <= $3, in seq (= offset) order.
SELECT log_offset, customer, seq, source, source_event_id, type, object_type, object_id,
       occurred_at, ingested_at, payload::text AS payload
FROM events
WHERE customer = $1 AND log_offset > $2 AND log_offset <= $3
ORDER BY seq
LIMIT $4
