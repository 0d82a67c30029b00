-- Names the session in pg_stat_activity, where `status` finds the leader and the standbys.
SELECT set_config('application_name', $1, false)
