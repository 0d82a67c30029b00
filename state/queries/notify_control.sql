-- Tells a running leader that operators changed something (dead letters, replay requests).
SELECT pg_notify('sfstripe_control', $1)
