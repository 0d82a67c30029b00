"""`python -m bench <name> [options]`: run one benchmark."""

from __future__ import annotations

import sys

from bench import append, cometd, dispatch, webhooks


def main(argv: list[str]) -> int:
    benches = {
        "append": append.main,
        "cometd": cometd.main,
        "dispatch": dispatch.main,
        "webhooks": webhooks.main,
    }
    if not argv or argv[0] not in benches:
        print(f"usage: python -m bench {{{','.join(benches)}}} [options]", file=sys.stderr)
        return 2
    return benches[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
