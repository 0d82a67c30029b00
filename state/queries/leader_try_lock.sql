-- The one-consumer-per-database lock, held by the leader's session for as long as it lives.
SELECT pg_try_advisory_lock(hashtext('sfstripe:leader'))
