"""`/healthz` (the process is alive) and `/readyz` (it can accept and commit events).

Readiness deliberately ignores the sources: a Salesforce outage must not stop Stripe webhooks.
"""

from __future__ import annotations

from aiohttp import web

from metrics.instruments import READY
from state.watch import DatabaseWatch


class Readiness:
    def __init__(self, watch: DatabaseWatch) -> None:
        self._watch = watch
        self.shutting_down = False

    def problems(self) -> list[str]:
        problems = []
        if not self._watch.available:
            problems.append("database unavailable")
        if self.shutting_down:
            problems.append("shutting down")
        READY.set(0 if problems else 1)
        return problems


def add_health_routes(app: web.Application, readiness: Readiness) -> None:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        problems = readiness.problems()
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
