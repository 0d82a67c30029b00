SELECT number FROM schema_migrations ORDER BY number
