"""Closing a dedicated connection without waiting on a database that stopped answering."""

from __future__ import annotations

import anyio
import asyncpg

CLOSE_WAIT_S = 0.5


async def close_quickly(conn: asyncpg.Connection) -> None:
    """Close politely if the server answers at once, else drop the socket (shutdown must not
    hang on a silent server; the server ends the session either way)."""
    with anyio.CancelScope(shield=True):
        if not conn.is_closed():
            try:
                with anyio.move_on_after(CLOSE_WAIT_S):
                    await conn.close()
            except Exception:
                pass
        if not conn.is_closed():
            conn.terminate()
