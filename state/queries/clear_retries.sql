-- A lane got past its failing event: its retry schedule is done.
DELETE FROM handler_retries AS r
USING unnest($1::text[], $2::text[], $3::bigint[]) AS t(handler, customer, last_seq)
WHERE r.handler = t.handler AND r.customer = t.customer AND r.seq <= t.last_seq
