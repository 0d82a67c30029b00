"""sfstripe: keeps Salesforce and Stripe Billing in agreement through one ordered event log.

This package holds configuration, the CLI and the daemon's wiring; it builds the other packages
(`handlers`, `stream`, `state`, `metrics`) from plain, typed settings.
"""

__version__ = "0.1.0"
