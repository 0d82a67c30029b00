-- Replays run by the leader can be cancelled: a pending request at once (status 'cancelled'), a
-- running one by asking its runner (cancel_requested_at), which stops at a safe point and
-- records 'cancelled' with how far it got.
ALTER TABLE replay_requests DROP CONSTRAINT replay_requests_status_check;
ALTER TABLE replay_requests ADD CONSTRAINT replay_requests_status_check
    CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled'));
ALTER TABLE replay_requests ADD COLUMN cancel_requested_at timestamptz;
