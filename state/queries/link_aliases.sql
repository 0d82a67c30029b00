INSERT INTO identity_links (alias, customer)
SELECT * FROM unnest($1::text[], $2::text[])
