-- A small batch appended in one statement (see the append_events function); run outside a
-- transaction block, so that the answer comes after the commit.
SELECT input_ord, stored_offset, stored_customer, stored_seq
FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
