"""`Inbox`: a bounded mailbox for one actor, lighter than a trio memory channel; `Alarms`: the
deadlines of every waiting inbox in one heap.

A memory channel costs about 2 KB (its state, two channel objects and their task sets); with
tens of thousands of live conversations that is most of an actor's memory. An actor's inbox has
exactly one consumer and never blocks its producer (the router), so it needs much less: a list,
a capacity and the waiting task.

A waiting actor also has a deadline (its timer, or hibernation). `trio.move_on_at` would give
each waiting actor a cancel scope, its cancel status with two sets, a heap entry and a bound
method: six objects more per live conversation for the collector to walk, and ~1 KB. Instead
`get(deadline)` registers the deadline with the router's `Alarms`, one task and one heap for
all inboxes, which hands a waiter `None` when its deadline passes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

import outcome
import trio

T = TypeVar("T")

_PRUNE_AT = 1_000
"""Rebuild the alarm heap when it holds this many more stale entries than twice the armed ones
(trio prunes its own deadline heap the same way)."""


class Inbox(Generic[T]):
    __slots__ = ("_alarms", "_armed", "_capacity", "_deadline", "_items", "_waiter")

    def __init__(self, capacity: int, alarms: Alarms | None = None):
        if capacity < 1:
            raise ValueError("an inbox needs room for at least one item")
        self._capacity = capacity
        self._items: list[T] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._alarms = alarms
        self._deadline = math.inf
        """When the waiter gives up (trio time)."""
        self._armed = math.inf
        """The time of this inbox's live entry in the alarm heap (inf: none)."""

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

    def get(self, deadline: float = math.inf) -> Awaitable[T | None]:
        """Wait for the next item until `deadline` (trio time); None once it has passed.

        Cancellable, and nothing is lost if cancelled. A plain function returning what to
        await, so a waiting actor holds no coroutine frame of the inbox's own: call it in the
        task that awaits it (`await inbox.get(deadline)`).
        """
        if self._items or deadline <= trio.current_time():
            return self._ready()
        if self._waiter is not None:
            raise trio.BusyResourceError("another task is already waiting on this inbox")
        if deadline != math.inf:
            if self._alarms is None:
                raise RuntimeError("an inbox without Alarms can only wait without a deadline")
            self._deadline = deadline
            if deadline < self._armed:
                self._alarms.arm(self, deadline)
        self._waiter = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self)

    async def _ready(self) -> T | None:
        await trio.lowlevel.checkpoint()
        return self.get_nowait() if self._items else None

    def __call__(self, _: object) -> trio.lowlevel.Abort:
        """The waiter is cancelled (the inbox is its own abort function: a bound method would
        be one more object per waiting actor)."""
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def close(self) -> None:
        """The consumer is gone: its alarm, if any, is void."""
        if self._armed != math.inf and self._alarms is not None:
            self._alarms.disarm()
        self._armed = math.inf

    def _ring(self, at: float) -> None:
        """The alarm armed for `at` went off."""
        self._armed = math.inf
        waiter = self._waiter
        if waiter is None:
            return
        if self._deadline <= at:
            self._waiter = None
            trio.lowlevel.reschedule(waiter, outcome.Value(None))
        elif self._alarms is not None:  # waiting again, with a later deadline
            self._alarms.arm(self, self._deadline)


class Alarms:
    """The deadlines of waiting inboxes, in one heap run by one task (`run`)."""

    __slots__ = ("_active", "_heap", "_seq", "_wakeup")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Inbox[Any]]] = []
        self._seq = 0
        self._active = 0
        """Entries that are some inbox's live one (the rest are stale)."""
        self._wakeup: trio.Event | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, inbox: Inbox[Any], at: float) -> None:
        if inbox._armed == math.inf:
            self._active += 1
        inbox._armed = at
        self._seq += 1
        heap = self._heap
        heapq.heappush(heap, (at, self._seq, inbox))
        if heap[0][2] is inbox and self._wakeup is not None:
            self._wakeup.set()
        if len(heap) > _PRUNE_AT + 2 * self._active:
            heap[:] = [entry for entry in heap if entry[2]._armed == entry[0]]
            heapq.heapify(heap)

    def disarm(self) -> None:
        self._active -= 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Ring each inbox whose deadline has come. Runs until cancelled."""
        heap = self._heap
        task_status.started()
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                at, _, inbox = heapq.heappop(heap)
                if inbox._armed == at:
                    self._active -= 1
                    inbox._ring(at)
            self._wakeup = wakeup = trio.Event()
            with trio.move_on_at(heap[0][0] if heap else math.inf):
                await wakeup.wait()
