-- Running requests whose cancellation was asked: their runner stops them at a safe point.
SELECT id FROM replay_requests WHERE status = 'running' AND cancel_requested_at IS NOT NULL
