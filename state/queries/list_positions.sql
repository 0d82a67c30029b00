SELECT source, channel, position, updated_at FROM source_positions ORDER BY source, channel
