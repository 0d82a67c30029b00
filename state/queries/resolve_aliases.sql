SELECT alias, customer FROM identity_links WHERE alias = ANY($1::text[])
