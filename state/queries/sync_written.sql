-- What sfstripe last wrote to these fields of one record.
SELECT field, value
FROM sync_writes
WHERE side = $1 AND record_id = $2 AND field = ANY($3::text[])
