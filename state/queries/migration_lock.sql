-- A session-level advisory lock: two processes migrating at once take turns.
SELECT pg_advisory_lock(hashtext('sfstripe:migrate'))
