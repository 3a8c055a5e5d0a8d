"""`Inbox` and `Alarms`: an actor's mailbox and the shared deadlines of waiting actors."""

from __future__ import annotations

import gc
import math

import pytest
import trio

from intercept.runtime.inbox import Alarms, Inbox


async def test_get_returns_items_in_order_and_none_once_the_deadline_passes(autojump_clock):
    alarms = Alarms()
    async with trio.open_nursery() as nursery:
        await nursery.start(alarms.run)
        inbox: Inbox[str] = Inbox(4, alarms)
        assert inbox.put_nowait("a") and inbox.put_nowait("b")
        assert await inbox.get(trio.current_time() + 5) == "a"
        assert await inbox.get(trio.current_time() + 5) == "b"
        started = trio.current_time()
        assert await inbox.get(started + 5) is None
        assert trio.current_time() == pytest.approx(started + 5)
        # an item that arrives before the deadline is handed over at once
        nursery.start_soon(_put_later, inbox, 2.0, "c")
        started = trio.current_time()
        assert await inbox.get(started + 10) == "c"
        assert trio.current_time() == pytest.approx(started + 2)
        nursery.cancel_scope.cancel()


async def _put_later(inbox: Inbox[str], delay: float, item: str) -> None:
    await trio.sleep(delay)
    assert inbox.put_nowait(item)


async def test_a_later_deadline_after_a_woken_wait_is_kept_not_the_old_alarm(autojump_clock):
    alarms = Alarms()
    async with trio.open_nursery() as nursery:
        await nursery.start(alarms.run)
        inbox: Inbox[str] = Inbox(4, alarms)
        nursery.start_soon(_put_later, inbox, 1.0, "x")
        assert await inbox.get(trio.current_time() + 3) == "x"  # alarm at t+3 left armed
        started = trio.current_time()
        assert await inbox.get(started + 10) is None  # the old alarm goes off, re-arms
        assert trio.current_time() == pytest.approx(started + 10)
        # an earlier deadline than the armed one arms a new alarm
        nursery.start_soon(_put_later, inbox, 1.0, "y")
        assert await inbox.get(trio.current_time() + 100) == "y"
        started = trio.current_time()
        assert await inbox.get(started + 2) is None
        assert trio.current_time() == pytest.approx(started + 2)
        nursery.cancel_scope.cancel()


async def test_a_cancelled_wait_loses_nothing_and_a_closed_inbox_leaves_no_live_alarm(
        autojump_clock):
    alarms = Alarms()
    async with trio.open_nursery() as nursery:
        await nursery.start(alarms.run)
        inbox: Inbox[str] = Inbox(2, alarms)
        with trio.move_on_after(1):
            await inbox.get(trio.current_time() + 50)
        assert inbox.put_nowait("kept") and len(inbox) == 1
        assert await inbox.get() == "kept"
        inbox.close()
        assert alarms._active == 0
        await trio.sleep(100)  # the void alarm goes off harmlessly
        assert len(alarms) == 0
        nursery.cancel_scope.cancel()


async def test_an_inbox_without_alarms_refuses_a_deadline_and_one_waiter_at_a_time():
    inbox: Inbox[str] = Inbox(1)
    with pytest.raises(RuntimeError, match="without Alarms"):
        inbox.get(trio.current_time() + 1)
    got: list[str | None] = []

    async def consumer() -> None:  # get() is called by the task that awaits it
        got.append(await inbox.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            inbox.get()
        assert inbox.put_nowait("x")  # handed to the waiter
        assert inbox.put_nowait("y") and not inbox.put_nowait("z")  # full at 1
    assert got == ["x"]
    assert await inbox.get(-math.inf) == "y"  # a passed deadline still returns what waits
    assert await inbox.get(-math.inf) is None


async def test_stale_alarms_are_pruned(autojump_clock):
    alarms = Alarms()
    inboxes = [Inbox[str](1, alarms) for _ in range(3)]
    async with trio.open_nursery() as nursery:
        await nursery.start(alarms.run)
        for i in range(3000):  # deadlines moving ever earlier leave stale entries behind
            inbox = inboxes[i % 3]
            alarms.arm(inbox, 1e6 - i)
        assert len(alarms) <= 1_000 + 2 * 3 + 1
        nursery.cancel_scope.cancel()


def test_a_waiting_inbox_costs_no_cancel_scope():
    # the point of Alarms: no CancelScope objects are made by a wait with a deadline
    async def wait_once() -> list[str]:
        alarms = Alarms()
        async with trio.open_nursery() as nursery:
            await nursery.start(alarms.run)
            inbox: Inbox[str] = Inbox(1, alarms)

            async def consumer() -> None:
                await inbox.get(trio.current_time() + 60)

            before = {id(o) for o in gc.get_objects()}
            nursery.start_soon(consumer)
            await trio.testing.wait_all_tasks_blocked()
            kinds = [type(o).__name__ for o in gc.get_objects() if id(o) not in before]
            nursery.cancel_scope.cancel()
        return kinds

    kinds = trio.run(wait_once)
    assert "Task" in kinds and "CancelScope" not in kinds and "CancelStatus" not in kinds
