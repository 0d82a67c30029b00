-- Checkpoints only move forward, whoever writes them (the dispatcher, `dlq skip`).
INSERT INTO handler_checkpoints AS c (handler, customer, last_seq)
SELECT t.handler, t.customer, t.last_seq
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS t(handler, customer, last_seq)
ON CONFLICT (handler, customer) DO UPDATE
    SET last_seq = excluded.last_seq, updated_at = now()
    WHERE c.last_seq < excluded.last_seq
