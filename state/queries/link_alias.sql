INSERT INTO identity_links (alias, customer) VALUES ($1, $2)
