INSERT INTO schema_migrations (number, name) VALUES ($1, $2)
