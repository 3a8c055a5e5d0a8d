"""`HttpServices`: what the ASGI app and the admin API are handed instead of the `Server`.

The composition root (server.py) builds one. Reads and audit rows go straight to the store;
the few changes only the composition root can make (take over, hand back, reload, purge,
health) are behind the `ServerActions` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import Config
    from ..foundation.metrics import Metrics
    from ..gateways import Gateway
    from ..outreach.campaigns import CampaignRunner
    from ..runtime.config_reload import Reloaded
    from ..runtime.number_health import NumberHealthMonitor
    from ..scenarios import ScenarioRegistry
    from ..store import OutboxRow, Store
    from ..store.retention import Kind, PurgeResult


class ServerActions(Protocol):
    """What only the composition root can do (it holds the router and the sender)."""

    async def take_over(self, conversation_id: int, text: str, *, author: str,
                        override: bool = False) -> OutboxRow:
        """A human texts into a conversation. `LookupError`: no such conversation;
        `PermissionError`: the number opted out; `ValueError`: the text is empty."""
        ...

    async def hand_back(self, conversation_id: int, *, author: str) -> None:
        """Give the conversation back to the bot. `LookupError`: no such conversation."""
        ...

    async def reload(self) -> Reloaded:
        """Reload the config's numbers and cities and the scenario folder, all or nothing
        (`ConfigError` or `ScenarioErrors` changes nothing)."""
        ...

    async def purge(self, kind: Kind, older_than: float, *, dry_run: bool = False
                    ) -> PurgeResult:
        """Delete `kind` conversations idle for longer than `older_than` seconds."""
        ...

    def health(self) -> dict[str, Any]:
        """/healthz: status, gateway, store, live actors, outbox depth, the store's id."""
        ...


@dataclass(frozen=True, slots=True)
class HttpServices:
    """Everything the HTTP layer uses."""

    config: Config
    store: Store
    metrics: Metrics
    gateway: Gateway
    """Its webhook routes are mounted; the simulator endpoints need the `SimGateway`."""
    campaigns: CampaignRunner
    number_health: NumberHealthMonitor
    registry: ScenarioRegistry
    """The loaded scenario versions (the console's scenario pages)."""
    now: Callable[[], float]
    """Unix time (the server's clock, which follows trio's)."""
    actions: ServerActions
