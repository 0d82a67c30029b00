SELECT position FROM source_positions WHERE source = $1 AND channel = $2
