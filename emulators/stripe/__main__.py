"""`python -m emulators.stripe [--host H] [--port N] [--frozen-clock]`: serve until interrupted,
after printing the URL it listens on."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from emulators.stripe.server import running_emulator


async def _serve(host: str, port: int, frozen_clock: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_emulator(host, port, frozen_clock=frozen_clock) as emulator:
            print(emulator.url, flush=True)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.stripe", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument(
        "--frozen-clock",
        action="store_true",
        help="time moves only through POST /_emulator/advance",
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.frozen_clock))


if __name__ == "__main__":
    main()
