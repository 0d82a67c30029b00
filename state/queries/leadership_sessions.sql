-- sfstripe's leadership sessions in this database, and which one holds the leader lock (a
-- single-bigint advisory lock shows its key split into classid (high) and objid (low bits)).
WITH k AS (SELECT hashtext('sfstripe:leader')::bigint AS key)
SELECT a.pid, a.application_name, a.backend_start,
       EXISTS (
           SELECT 1 FROM pg_locks AS l, k
           WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
             AND l.classid::bigint = ((k.key >> 32) & 4294967295)
             AND l.objid::bigint = (k.key & 4294967295)
             AND l.objsubid = 1
       ) AS holds_lock
FROM pg_stat_activity AS a
WHERE a.datname = current_database() AND a.application_name LIKE 'sfstripe %'
ORDER BY a.backend_start
