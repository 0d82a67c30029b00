"""Prometheus metrics (`sfstripe_` prefix) and their exposition; usable by every package."""
