-- Run by a new leader: a request still `running` belonged to a leader whose session ended.
UPDATE replay_requests
SET status = 'failed',
    result = jsonb_build_object('error', 'interrupted: the leader running it stopped'),
    updated_at = now()
WHERE status = 'running'
RETURNING id
