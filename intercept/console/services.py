"""`ConsoleServices`: everything the console uses, handed to it by the `http.app.App` that
mounts it (from the app's `HttpServices` and the API's own reads, tokens and handlers)."""

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
