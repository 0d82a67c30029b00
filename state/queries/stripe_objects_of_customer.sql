SELECT object_id, kind, stripe_customer, event_created, status, body
FROM stripe_objects
WHERE stripe_customer = $1
ORDER BY object_id
