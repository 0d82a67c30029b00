UPDATE handler_offsets AS h
SET low_water = t.low_water, updated_at = now()
FROM unnest($1::text[], $2::bigint[]) AS t(handler, low_water)
WHERE h.handler = t.handler AND h.low_water <> t.low_water
