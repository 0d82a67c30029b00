"""Stripe events into the log: signed webhooks and polling of `/v1/events`, one dedupe."""
