-- Remember what sfstripe wrote (one row per field; the newest value wins).
INSERT INTO sync_writes (side, record_id, field, value)
SELECT $1, $2, f.field, f.value
FROM unnest($3::text[], $4::jsonb[]) AS f(field, value)
ON CONFLICT (side, record_id, field)
DO UPDATE SET value = excluded.value, written_at = now()
