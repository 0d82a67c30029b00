"""A stateful, Stripe-compatible Billing server for tests, benchmarks and the demo.

`running_emulator()` serves one on a loopback port in-process; `python -m emulators.stripe --port N`
runs one on its own. See the README section "Stripe Billing emulator".
"""

from emulators.stripe.server import StripeEmulator, running_emulator

__all__ = ["StripeEmulator", "running_emulator"]
