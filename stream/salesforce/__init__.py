"""Salesforce: OAuth, the REST client, and the Change Data Capture source over CometD."""
