SELECT id FROM replay_requests WHERE status = 'pending' ORDER BY id
