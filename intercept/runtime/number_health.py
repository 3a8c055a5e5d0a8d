"""The number-health monitor: reads each of our numbers' failed deliveries on a schedule.

It publishes them as metrics (`intercept_number_failure_share{number}`,
`intercept_number_failures{number,reason}`, `intercept_number_paused{number}`) and keeps
`paused`: the numbers whose failed share reached `pause_share` with at least `min_messages`
settled in the window. Campaigns do not send from a paused number; a pause and its end are
logged and audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio
from prometheus_client import CollectorRegistry, Gauge

from ..foundation.phone import mask
from ..store.health import REASONS, Health, NumberHealth
from ..store.ops import Audit
from ..store.writer import Store

log = logging.getLogger(__name__)


class NumberHealthMonitor:
    """See the module docstring. `check()` once; `run()` every `interval` seconds."""

    def __init__(self, *, store: Store, numbers: list[str], clock: Callable[[], float],
                 registry: CollectorRegistry, window: float, min_messages: int,
                 pause_share: float, interval: float):
        self.store, self.numbers, self.clock = store, numbers, clock
        self.window, self.min_messages = window, min_messages
        self.pause_share, self.interval = pause_share, interval
        self.paused: dict[str, Health] = {}
        """Numbers campaigns must not send from, with the figures that paused them."""
        self.latest: dict[str, Health] = {}
        self.checked_at: float | None = None
        self._share = Gauge("intercept_number_failure_share",
                            "Failed share of each of our numbers' settled messages in the "
                            "health window", ["number"], registry=registry)
        self._failures = Gauge("intercept_number_failures",
                               "Failed deliveries of each of our numbers in the health window, "
                               "by reason", ["number", "reason"], registry=registry)
        self._paused = Gauge("intercept_number_paused",
                             "1 while campaigns do not send from the number (its failed share "
                             "reached [health] pause_share), else 0", ["number"],
                             registry=registry)

    def pausing(self, health: Health) -> bool:
        return (self.pause_share > 0 and health.settled >= self.min_messages
                and health.failure_share >= self.pause_share)

    async def check(self) -> dict[str, Health]:
        """Read the window, update the metrics and the paused numbers."""
        now = self.clock()
        healths: dict[str, Health] = await self.store.call(
            NumberHealth(now - self.window, self.numbers))
        self.latest, self.checked_at = healths, now
        for number, health in healths.items():
            self._share.labels(number=number).set(health.failure_share)
            for reason in REASONS:
                self._failures.labels(number=number, reason=reason).set(health.reasons[reason])
            was, now_paused = number in self.paused, self.pausing(health)
            if now_paused and not was:
                self.paused[number] = health
                await self._record(number, health, "pause", now)
            elif was and not now_paused:
                del self.paused[number]
                await self._record(number, health, "resume", now)
            elif now_paused:
                self.paused[number] = health
            self._paused.labels(number=number).set(1 if now_paused else 0)
        return healths

    async def _record(self, number: str, health: Health, action: str, now: float) -> None:
        top = ", ".join(f"{reason} {count}" for reason, count in health.reasons.most_common(3))
        detail = (f"{mask(number)}: {health.failed} of {health.settled} deliveries failed "
                  f"({health.failure_share:.0%}) in the last {self.window / 3600:g} h"
                  + (f"; {top}" if top else ""))
        if action == "pause":
            log.warning("campaigns stop sending from %s (pause_share %.0f%%)", detail,
                        self.pause_share * 100)
        else:
            log.info("campaigns send from %s again", detail)
        await self.store.call(Audit(at=now, actor="number-health", role="server",
                                    action=f"{action} number", status=200, detail=detail))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        await self.check()
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            await self.check()
