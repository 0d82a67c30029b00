"""The sources (Salesforce CDC, Stripe events, webhooks), their API clients, and log intake."""
