"""The router and supervisor: events to actors, actors in one nursery, timers of sleepers.

`deliver()` never blocks: an actor's inbox is bounded, and when it is full the router only flags
the actor, which then re-reads its pending messages from the store (they are committed before
they are routed). Hibernated conversations cost one heap entry if they have a timer, else nothing.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING, Any

import trio

from .actor import ActorHandle, ConversationActor, Inbound
from .inbox import Inbox
from .lookups import Lookups
from .services import Busy, Services
from .turn import TurnRules
from .webhooks import Webhooks, WebhookSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..config import Config
    from ..foundation.metrics import Metrics
    from ..scenarios import ScenarioRegistry
    from ..store import FunnelMove, Store
    from .clock import WallClock
    from .delays import DelayModel
    from .optouts import OptOuts
    from .sender import Sender

log = logging.getLogger(__name__)


class Router:
    def __init__(self, *, store: Store, sender: Sender, registry: ScenarioRegistry,
                 config: Config, clock: WallClock, metrics: Metrics, delays: DelayModel,
                 optouts: OptOuts, hibernate_after: float, inbox_size: int = 64,
                 max_crashes: int = 3, lookups: Lookups | None = None,
                 webhooks: Webhooks | None = None):
        self.store = store
        self.sender = sender
        self.registry = registry
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.delays = delays
        self.lookups = lookups or Lookups(metrics=metrics)
        self.webhooks = webhooks or Webhooks(WebhookSettings(), metrics=metrics)
        self.hibernate_after = hibernate_after
        self.inbox_size = inbox_size
        self.max_crashes = max_crashes
        self.actors: dict[int, ActorHandle] = {}
        self._busy = Busy()
        self.services = Services(
            store=store, enqueue=sender.enqueue, registry=registry, config=config, clock=clock,
            metrics=metrics, lookups=self.lookups, optouts=optouts,
            rules=TurnRules.of(config.optout, delays=delays, merge=delays.enabled),
            hibernate_after=hibernate_after, max_crashes=max_crashes, busy=self._busy,
            retire=self.retire, record=self.record, webhooks=self.webhooks)
        """What every actor is handed (the router is the actors' composition root)."""
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._timers: list[tuple[float, int]] = []
        self._timer_at: dict[int, float] = {}
        self._timer_wakeup = trio.Event()
        self._children: dict[tuple[str, str, str], Any] = {}

    @property
    def busy(self) -> int:
        """How many actors are between an engine step and its commit."""
        return self._busy.count

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The supervisor nursery: every actor task lives here. Runs until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._run_timers)
                task_status.started()
        finally:
            # Late arrivals (a webhook whose commit finished during shutdown) are committed:
            # the next start processes them, so they are not routed now.
            self._closed = True

    # -- events in

    def deliver(self, conversation_id: int, conv_seq: int, text: str,
                media: tuple[str, ...] = (), received_at: float = 0.0) -> None:
        """Route a committed inbound message to its actor, waking it if needed."""
        if self._closed:
            return
        handle = self.actors.get(conversation_id) or self._spawn(conversation_id)
        if not handle.inbox.put_nowait(Inbound(conv_seq, text, media, received_at)):
            handle.overflowed = True  # the actor re-reads its pending messages from the store

    def wake(self, conversation_id: int) -> None:
        """Make sure the conversation has a live actor (it loads its work from the store)."""
        if conversation_id not in self.actors and not self._closed:
            self._spawn(conversation_id)

    def poke(self, conversation_id: int, *, wake: bool = False) -> None:
        """Make a live actor re-read its conversation from the store (after an operator
        changed it); with `wake`, start one if none is live."""
        handle = self.actors.get(conversation_id)
        if handle is None:
            if wake and not self._closed:
                self._spawn(conversation_id)
            return
        handle.stale = True  # the actor reloads (nothing overflowed)
        handle.inbox.put_nowait(Inbound(0, ""))  # and wakes up (seq 0 is never processed)

    def schedule_timer(self, conversation_id: int, at: float) -> None:
        """Wake a hibernated conversation at Unix time `at`."""
        previous = self._timer_at.get(conversation_id)
        if previous is not None and previous <= at:
            return
        self._timer_at[conversation_id] = at
        heapq.heappush(self._timers, (at, conversation_id))
        if self._timers[0][1] == conversation_id:
            self._timer_wakeup.set()

    # -- actor life cycle

    def _spawn(self, conversation_id: int) -> ActorHandle:
        assert self._nursery is not None, "Router.run() is not running"
        handle = ActorHandle(conversation_id, Inbox(self.inbox_size))
        self.actors[conversation_id] = handle
        self._timer_at.pop(conversation_id, None)  # a live actor runs its own timer
        self._nursery.start_soon(ConversationActor(self.services, handle).run)
        self.metrics.live_actors.inc()
        self.metrics.wakes.inc()
        return handle

    def retire(self, handle: ActorHandle, timer_at: float | None) -> None:
        """Called by an actor whose task is ending (idle, ended, parked or crashed out)."""
        if self.actors.get(handle.conversation_id) is handle:
            del self.actors[handle.conversation_id]
        self.metrics.live_actors.dec()
        self.metrics.hibernations.inc()
        if timer_at is not None:
            self.schedule_timer(handle.conversation_id, timer_at)

    def record(self, scenario: str, transitions: Sequence[FunnelMove],
               outcome: str | None, handed_off: bool) -> None:
        """Count a committed step in the metrics (labelled children are cached)."""
        children = self._children
        for move in transitions:
            source, target = move.source, move.target
            key = (scenario, source, target)
            child = children.get(key)
            if child is None:
                child = children[key] = self.metrics.transitions.labels(
                    scenario=scenario, source=source or "-", target=target)
            child.inc()
        if outcome is not None:
            key = ("ended", outcome, "")
            child = children.get(key)
            if child is None:
                child = children[key] = self.metrics.conversations_ended.labels(outcome=outcome)
            child.inc()
        if handed_off:
            self.metrics.handoffs.inc()

    async def quiesce(self) -> None:
        """Wait until no actor is between an engine step and its commit."""
        while self.busy:
            await trio.sleep(0.01)

    # -- timers of hibernated conversations

    async def _run_timers(self) -> None:
        heap = self._timers
        while True:
            self._timer_wakeup = trio.Event()
            if not heap:
                await self._timer_wakeup.wait()
                continue
            at, conversation_id = heap[0]
            if at > self.clock.now():
                with trio.move_on_at(self.clock.deadline(at)):
                    await self._timer_wakeup.wait()
                continue
            heapq.heappop(heap)
            if self._timer_at.get(conversation_id) != at:
                continue  # superseded, or the actor woke up for a message meanwhile
            del self._timer_at[conversation_id]
            self.wake(conversation_id)
