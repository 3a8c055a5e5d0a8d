"""`Services`: what a conversation actor is handed, instead of reaching into the router.

The router (the actors' composition root) builds one and gives it to every actor it starts,
the way trio hands a nursery down: the actor never imports or calls up into its supervisor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from ..foundation.metrics import Metrics
    from ..scenarios import ScenarioRegistry
    from ..store import FunnelMove, OutboxRow, Store
    from .clock import WallClock
    from .lookups import Lookups
    from .optouts import OptOuts
    from .turn import TurnRules
    from .webhooks import Webhooks


class Busy:
    """How many actors are between an engine step and its commit (see `Router.quiesce`)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True, slots=True)
class Services:
    """Everything an actor uses besides its own conversation."""

    store: Store
    enqueue: Callable[[list[OutboxRow]], None]
    """Hand committed replies to the sender."""
    registry: ScenarioRegistry
    config: Config
    clock: WallClock
    metrics: Metrics
    lookups: Lookups
    optouts: OptOuts
    """Asked whether the person opted out; told when a turn changes it."""
    rules: TurnRules
    hibernate_after: float
    max_crashes: int
    busy: Busy
    retire: Callable[..., None]
    """`retire(handle, timer_at)`: the actor's task is ending."""
    record: Callable[[str, Sequence[FunnelMove], str | None, bool], None]
    """`record(scenario, transitions, outcome, handed_off)`: count a committed turn."""
    webhooks: Webhooks
    """Makes the webhook calls scenarios ask for."""
