"""PostgreSQL: migrations, the ordered per-customer event log, source positions, identity links.

This package imports nothing else of sfstripe's: every other package builds on it.
"""
