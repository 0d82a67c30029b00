-- Skip: the lane's checkpoint moves to the dead letter's seq (never backwards) and the lane goes
-- on after it.
WITH skipped AS (
    UPDATE dead_letters
    SET status = 'skipped', resolved_at = now(), resolution = $2
    WHERE id = $1 AND status = 'parked'
    RETURNING id, handler, customer, seq, log_offset, source_event_id, reason, attempts,
              created_at, status, resolved_at, resolution, settled_at
),
moved AS (
    INSERT INTO handler_checkpoints AS c (handler, customer, last_seq)
    SELECT handler, customer, seq FROM skipped
    ON CONFLICT (handler, customer) DO UPDATE
        SET last_seq = excluded.last_seq, updated_at = now()
        WHERE c.last_seq < excluded.last_seq
)
SELECT * FROM skipped
