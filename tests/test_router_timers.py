"""The router's heap of hibernated conversations' timers stays bounded by the live ones."""

from __future__ import annotations

import trio

from helpers import running


async def test_superseded_timer_entries_are_pruned(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _):
        router = server.router
        far = server.clock.now() + 86_400
        for i in range(3_000):  # ever earlier timers for two conversations
            router.schedule_timer(7, far - i)
            router.schedule_timer(8, far - i)
        assert len(router._timers) <= 1_000 + 2 * 2 + 1
        assert router._timer_at == {7: far - 2_999, 8: far - 2_999}
        assert min(router._timers) == (far - 2_999, 7)


async def test_timers_of_woken_conversations_are_pruned(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _):
        router = server.router
        far = server.clock.now() + 86_400
        for cid in range(1, 3_001):  # hibernated with a timer, then woken (nothing to load)
            router.schedule_timer(cid, far)
            router.wake(cid)
            await trio.sleep(0)
        assert not router._timer_at
        assert len(router._timers) <= 1_000 + 1
