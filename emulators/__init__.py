"""Stateful emulators of the services sfstripe talks to, for tests, benchmarks and the demo."""
