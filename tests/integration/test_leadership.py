"""The leader lock: one holder per database, visible in pg_stat_activity, free when the
holder's session ends."""

from __future__ import annotations

import asyncpg

from state.leadership import LeaderLock, leadership_sessions


async def test_one_leader_and_a_standby(pool: asyncpg.Pool, dsn: str) -> None:
    async with LeaderLock(dsn) as first, LeaderLock(dsn) as second:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        sessions = await leadership_sessions(pool)
        assert sorted((s.role, s.leader) for s in sessions) == [
            ("leader", True),
            ("standby", False),
        ]
        assert all(s.instance.endswith(f":{__import__('os').getpid()}") for s in sessions)
        assert await first.check()
        await first.release()
        assert not await first.check()
        assert await second.try_acquire()
        assert [s.role for s in await leadership_sessions(pool) if s.leader] == ["leader"]
    assert await leadership_sessions(pool) == []


async def test_a_dead_session_frees_the_lock(pool: asyncpg.Pool, dsn: str) -> None:
    holder, waiter = LeaderLock(dsn), LeaderLock(dsn)
    try:
        assert await holder.try_acquire(role_when_held="replay")
        assert [s.role for s in await leadership_sessions(pool) if s.leader] == ["replay"]
        async with pool.acquire() as conn:  # the holder's backend dies (as with kill -9)
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'sfstripe replay%' AND datname = current_database()"
            )
        assert not await holder.check()
        assert await waiter.try_acquire_quietly()
    finally:
        await holder.release()
        await waiter.release()
