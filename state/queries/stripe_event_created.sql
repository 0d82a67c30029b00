-- When a logged Stripe event was created (its `occurred_at`), to seed a moved poller cursor.
SELECT occurred_at FROM events WHERE source = 'stripe' AND source_event_id = $1
