-- Which of these (source, source_event_id) keys are already in the log.
SELECT k.source, k.source_event_id
FROM unnest($1::text[], $2::text[]) AS k(source, source_event_id)
CROSS JOIN LATERAL (
    SELECT 1 FROM events AS e
    WHERE e.source = k.source AND e.source_event_id = k.source_event_id
    LIMIT 1
) AS found
