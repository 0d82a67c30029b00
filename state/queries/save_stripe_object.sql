-- The caller decided (by the monotonic rules) that this state replaces what is stored.
INSERT INTO stripe_objects (object_id, kind, stripe_customer, event_created, status, body)
VALUES ($1, $2, $3, $4, $5, $6::jsonb)
ON CONFLICT (object_id) DO UPDATE
SET stripe_customer = excluded.stripe_customer,
    event_created = excluded.event_created,
    status = excluded.status,
    body = excluded.body,
    updated_at = now()
