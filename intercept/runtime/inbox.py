"""`Inbox`: a bounded mailbox for one actor, lighter than a trio memory channel.

A memory channel costs about 2 KB (its state, two channel objects and their task sets); with
tens of thousands of live conversations that is most of an actor's memory. An actor's inbox has
exactly one consumer and never blocks its producer (the router), so it needs much less: a list,
a capacity and the waiting task.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import outcome
import trio

T = TypeVar("T")


class Inbox(Generic[T]):
    __slots__ = ("_capacity", "_items", "_waiter")

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("an inbox needs room for at least one item")
        self._capacity = capacity
        self._items: list[T] | None = None
        self._waiter: trio.lowlevel.Task | None = None

    def __len__(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: T) -> bool:
        """Hand `item` to the consumer, or queue it; False (and nothing queued) when full."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter, outcome.Value(item))
            return True
        items = self._items
        if items is None:
            self._items = [item]
            return True
        if len(items) >= self._capacity:
            return False
        items.append(item)
        return True

    def get_nowait(self) -> T:
        """The oldest item; raises `trio.WouldBlock` when empty."""
        items = self._items
        if not items:
            raise trio.WouldBlock
        item = items.pop(0)
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        """Wait for the next item (cancellable: nothing is lost if cancelled)."""
        if self._items:
            await trio.lowlevel.checkpoint()
            if self._items:
                return self.get_nowait()
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already waiting on this inbox")
        self._waiter = trio.lowlevel.current_task()
        item: T = await trio.lowlevel.wait_task_rescheduled(self._abort)
        return item

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED
