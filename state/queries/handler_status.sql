SELECT h.handler, h.start_offset, h.low_water, h.updated_at,
       (SELECT count(*) FROM dead_letters AS d
        WHERE d.handler = h.handler AND d.status = 'parked') AS parked,
       (SELECT count(*) FROM dead_letters AS d WHERE d.handler = h.handler) AS dead_letters,
       (SELECT count(*) FROM handler_retries AS r WHERE r.handler = h.handler) AS retrying
FROM handler_offsets AS h
ORDER BY h.handler
