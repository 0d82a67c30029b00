"""The emulator's time: wall-clock seconds plus what `POST /_emulator/advance` added.

A frozen clock (tests) stands still between advances, so amounts that depend on "now" (prorations
without `proration_date`, first periods) are exact. Webhook signatures always use the real wall
clock, as the SDK's tolerance check compares against it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Clock:
    frozen: bool = False
    offset: int = 0
    _frozen_at: int = field(default_factory=lambda: int(time.time()))

    def now(self) -> int:
        base = self._frozen_at if self.frozen else int(time.time())
        return base + self.offset

    def set(self, instant: int) -> None:
        """Move to `instant` (never backwards)."""
        self.offset += max(0, instant - self.now())
