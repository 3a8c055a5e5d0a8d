"""Failed authentications per client address, and the lockout after too many of them.

Pure bookkeeping: the caller passes the time (``trio.current_time()`` in the app, so that
MockClock drives it in tests). The table holds at most `max_clients` addresses; the one
unheard of for longest is forgotten first, so a flood of addresses costs bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..foundation.caching import BoundedDict

MAX_CLIENTS = 10_000


@dataclass(slots=True)
class _Client:
    since: float
    """When the current window of failures began."""
    failures: int
    locked_until: float = 0.0


class FailureLimiter:
    """`max_failures` failures within `window` seconds lock a client out for `lockout` s."""

    def __init__(self, *, max_failures: int, window: float, lockout: float,
                 max_clients: int = MAX_CLIENTS):
        self.max_failures, self.window, self.lockout = max_failures, window, lockout
        self.max_clients = max_clients
        self._clients: BoundedDict[str, _Client] = BoundedDict(max_clients)

    def __len__(self) -> int:
        return len(self._clients)

    def retry_after(self, client: str, now: float) -> float:
        """Seconds until `client` may try again; 0 when it is not locked out."""
        entry = self._clients.get(client)
        if entry is None or entry.locked_until <= now:
            return 0.0
        return entry.locked_until - now

    def fail(self, client: str, now: float) -> bool:
        """Count a failure of `client`; True when this one locks it out."""
        if self.max_failures <= 0:
            return False
        entry = self._clients.get(client)
        if entry is None or now - entry.since > self.window or 0 < entry.locked_until <= now:
            entry = _Client(since=now, failures=0)
            self._clients[client] = entry
        else:
            self._clients.touch(client)
        entry.failures += 1
        if entry.failures >= self.max_failures and entry.locked_until <= now:
            entry.locked_until = now + self.lockout
            return True
        return False
