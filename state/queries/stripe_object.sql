SELECT object_id, kind, stripe_customer, event_created, status, body
FROM stripe_objects
WHERE object_id = $1
