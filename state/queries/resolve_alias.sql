SELECT customer FROM identity_links WHERE alias = $1
