-- Each customer's last seq; LATERAL ... LIMIT 1 keeps every probe a backward index scan.
SELECT k.customer, coalesce(s.seq, 0) AS last_seq
FROM unnest($1::text[]) AS k(customer)
LEFT JOIN LATERAL (
    SELECT e.seq FROM events AS e WHERE e.customer = k.customer ORDER BY e.seq DESC LIMIT 1
) AS s ON true
