SELECT count(*) FROM rejected_events
