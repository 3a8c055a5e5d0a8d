"""`Services`: what a conversation actor is handed, instead of reaching into the router.

The router (the actors' composition root) builds one and gives it to every actor it starts,
the way trio hands a nursery down: the actor never imports or calls up into its supervisor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from ..foundation.metrics import Metrics
    from ..scenarios import ScenarioRegistry
    from ..store import Store
    from .clock import WallClock
    from .delays import DelayModel
    from .lookups import Lookups
    from .sender import Sender
    from .turn import TurnRules


class Busy:
    """How many actors are between an engine step and its commit (see `Router.quiesce`)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True, slots=True)
class Services:
    """Everything an actor uses besides its own conversation."""

    store: Store
    sender: Sender
    registry: ScenarioRegistry
    config: Config
    clock: WallClock
    metrics: Metrics
    delays: DelayModel
    lookups: Lookups
    rules: TurnRules
    hibernate_after: float
    max_crashes: int
    busy: Busy
    retire: Callable[..., None]
    """`retire(handle, timer_at)`: the actor's task is ending."""
    record: Callable[[str, list[tuple[int, str, str, str]], str | None, bool], None]
    """`record(scenario, transitions, outcome, handed_off)`: count a committed turn."""
