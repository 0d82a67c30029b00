-- Serialises appenders until commit; see log_head in the schema.
SELECT last_offset FROM log_head FOR UPDATE
