INSERT INTO rejected_events (source, source_event_id, customer, type, reason, payload)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (source, source_event_id) DO NOTHING
