"""`ConsoleServices`: everything the console uses, taken from the `http.app.App` mounting it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config
    from ..foundation.metrics import Metrics
    from ..http.access import Access
    from ..http.api import Api
    from ..scenarios import ScenarioRegistry
    from ..store import Store
    from ..store.reads import Reads


@dataclass(frozen=True, slots=True)
class ConsoleServices:
    """The server's parts the console reads, and the API's own reads, tokens and handlers."""

    config: Config
    store: Store
    """For audit rows."""
    metrics: Metrics
    registry: ScenarioRegistry
    """The loaded scenario versions."""
    now: Callable[[], float]
    """Unix time, by the server's clock."""
    health: Callable[[], dict[str, Any]]
    """What /healthz answers."""
    reads: Reads
    access: Access
    api: Api


def services_of(app: Any) -> ConsoleServices:
    """The console's services from the app that mounts it.

    The app holds the `HttpServices` the composition root builds for it or, before that part
    of issue 15 is merged, the `Server` itself; both give the same things.
    """
    handed = getattr(app, "services", None)
    if handed is not None:
        return ConsoleServices(
            config=handed.config, store=handed.store, metrics=handed.metrics,
            registry=handed.campaigns.services.registry, now=handed.now,
            health=handed.actions.health, reads=app.reads, access=app.access, api=app.api)
    server = app.server
    return ConsoleServices(
        config=server.config, store=server.store, metrics=server.metrics,
        registry=server.registry, now=lambda: server.clock.now(), health=server.health,
        reads=app.reads, access=app.access, api=app.api)
