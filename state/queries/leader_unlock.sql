SELECT pg_advisory_unlock(hashtext('sfstripe:leader'))
