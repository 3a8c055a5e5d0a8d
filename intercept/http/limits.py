"""Limits on HTTP clients: how long a request may take to arrive, and how many at once.

Hypercorn bounds the request line and headers (its keep-alive timer runs until the headers are
complete: ``http.header_timeout``), a connection that sends nothing (``http.read_timeout``) and
the header size (``http.max_header_bytes``). It has no deadline for a whole body and no cap on
requests in progress, so `HttpLimits`, an ASGI wrapper around the app, adds both:

- the body must arrive in full within ``http.body_timeout`` of the headers (a deadline for the
  whole body, not per byte): otherwise 408 and the connection is closed;
- at most ``http.max_connections`` requests are read or handled at once. When a new request
  comes in at the cap, the one that has been reading its body the longest (a slow client) is
  closed to make room; when every slot is busy handling a complete request, the newcomer gets
  503. ``/healthz`` and ``/metrics`` bypass the cap, so monitoring still sees the server.

Connections wait to be accepted in one queue per listening socket, so a flood of clients that
reconnect as fast as they are closed also delays /healthz on that socket. ``http.monitor_listen``
serves /healthz and /metrics alone on a socket of their own (`MonitorOnly`).

`raise_open_files_limit` lifts the process's soft limit on open files towards the hard one
(systemd's soft default is 1,024) and says so when the cap leaves too few for everything else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from ..config import HttpConfig, duration
from .routing import error_response

if TYPE_CHECKING:
    from hypercorn.config import Config as HypercornConfig

    from ..foundation.metrics import Metrics

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

EXEMPT = frozenset({"/healthz", "/metrics"})
"""Paths answered whatever the load: they read no body and do little work."""
FILES_RESERVED = 256
"""Open files kept for everything but HTTP clients: the store, media, the gateway, logs."""
LOG_EVERY = 10.0
"""Seconds between two warnings about requests the limits cut short."""
_REASONS = {"body_timeout": "bodies too slow (408)",
            "evicted": "slow requests closed to make room (503)",
            "busy": "requests refused at the cap (503)"}


async def serve_http(app: App, http: HttpConfig, metrics: Metrics | None = None, *,
                     task_status: trio.TaskStatus[tuple[list[str], list[str]]]
                     = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `app` on ``http.listen`` within the limits of ``[http]``, and /healthz and
    /metrics alone on ``http.monitor_listen`` when it is set; started with (addresses,
    monitor addresses)."""
    from hypercorn.trio import serve

    from .app import MAX_BODY

    raise_open_files_limit(http.max_connections)
    limited = HttpLimits.from_config(app, http, max_body=MAX_BODY, metrics=metrics)
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(partial(
            serve, limited, hypercorn_config(http), shutdown_trigger=trio.sleep_forever))
        monitor: list[str] = []
        if http.monitor_listen:
            monitor = await nursery.start(partial(
                serve, MonitorOnly(app), hypercorn_config(http, http.monitor_listen),
                shutdown_trigger=trio.sleep_forever))
            log.info("/healthz and /metrics also on %s", ", ".join(monitor))
        task_status.started((addresses, monitor))


class MonitorOnly:
    """ASGI wrapper for the monitoring listener: /healthz and /metrics, nothing else."""

    def __init__(self, app: App):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            from .app import answer_lifespan

            await answer_lifespan(receive, send)  # the main listener runs the app's own
        elif scope["type"] == "http":
            if scope["path"] in EXEMPT:
                await self.app(scope, receive, send)
            else:
                await _answer(send, 404, "this address (http.monitor_listen) serves only "
                                         "/healthz and /metrics")


def hypercorn_config(http: HttpConfig, listen: str = "") -> HypercornConfig:
    """Hypercorn's settings from ``[http]``: bind address (``listen``, else ``http.listen``),
    header and idle timeouts, sizes."""
    from hypercorn.config import Config as HypercornConfig

    config = HypercornConfig()
    config.bind = [listen or http.listen]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = duration(http.header_timeout)
    config.read_timeout = max(1, round(duration(http.read_timeout)))
    config.h11_max_incomplete_size = http.max_header_bytes
    config.backlog = http.backlog
    return config


class _Slot:
    __slots__ = ("reading", "scope")

    def __init__(self, scope: trio.CancelScope):
        self.scope = scope
        self.reading = True
        """Still receiving its body (a slot that may be taken from it)."""


class HttpLimits:
    """ASGI wrapper: a whole-body deadline and a cap on requests in progress (see the module)."""

    def __init__(self, app: App, *, body_timeout: float, max_connections: int,
                 max_body: int, metrics: Metrics | None = None):
        self.app = app
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.max_body = max_body
        self.metrics = metrics
        self._slots: dict[int, _Slot] = {}  # insertion order: oldest first
        self._ids = 0
        self._since_log: dict[str, int] = {}
        self._window = self._logged_at = -LOG_EVERY

    @classmethod
    def from_config(cls, app: App, http: HttpConfig, *, max_body: int,
                    metrics: Metrics | None = None) -> HttpLimits:
        return cls(app, body_timeout=duration(http.body_timeout),
                   max_connections=http.max_connections, max_body=max_body, metrics=metrics)

    @property
    def in_progress(self) -> int:
        return len(self._slots)

    def _count(self, reason: str) -> None:
        """Count a request cut short; log a summary at most every `LOG_EVERY` seconds."""
        if self.metrics is not None:
            self.metrics.http_refused.labels(reason).inc()
        now = time.monotonic()
        if not self._since_log:
            self._window = now
        self._since_log[reason] = self._since_log.get(reason, 0) + 1
        if now - self._logged_at >= LOG_EVERY:
            log.warning("HTTP limits cut short %s over %.0f s (%d requests in progress; "
                        "http.body_timeout %gs, http.max_connections %d)",
                        ", ".join(f"{n} {_REASONS[r]}" for r, n in sorted(
                            self._since_log.items())),
                        now - self._window, len(self._slots), self.body_timeout,
                        self.max_connections)
            self._since_log.clear()
            self._logged_at = now

    def _make_room(self) -> bool:
        """Close the request that has been reading its body the longest; False if none is."""
        for key, slot in self._slots.items():
            if slot.reading:
                slot.scope.cancel()
                del self._slots[key]  # its slot is free now; it answers 503 on its way out
                self._count("evicted")
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if len(self._slots) >= self.max_connections and not self._make_room():
            self._count("busy")
            await _answer(send, 503, "the server is busy: try again in a few seconds",
                          (b"retry-after", b"5"))
            return
        self._ids += 1
        key = self._ids
        cancel = trio.CancelScope(deadline=trio.current_time() + self.body_timeout)
        slot = self._slots[key] = _Slot(cancel)
        try:
            body: bytes | None = None
            with cancel:
                body = await _read_body(receive, self.max_body)
                if body is None:  # the client went away
                    return
            if body is None:
                if key in self._slots:  # the deadline, not an eviction
                    self._count("body_timeout")
                    await _answer(send, 408, "the request body did not arrive within "
                                             f"{self.body_timeout:g}s (http.body_timeout)")
                else:
                    await _answer(send, 503, "the server is busy and closed this slow request")
                return
            slot.reading = False
            self._slots.setdefault(key, slot)  # evicted just as its last byte came: serve it
            await self.app(scope, _replay(body), send)
        finally:
            self._slots.pop(key, None)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The body, or its first `limit` + 1 bytes when it is longer (the app answers 413);
    None when the client disconnects first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit or not message.get("more_body"):
            break
    return b"".join(chunks)[:limit + 1]


def _replay(body: bytes) -> Receive:
    """A `receive` that gives the app the body already read, then waits for a disconnect."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await trio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    return receive


async def _answer(send: Send, status: int, message: str, *extra: tuple[bytes, bytes]) -> None:
    """An error response that also closes the connection (its body is left unread)."""
    response = error_response(status, message)
    headers = [(b"content-type", response.content_type),
               (b"content-length", str(len(response.body)).encode()),
               (b"connection", b"close"), *response.headers, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def raise_open_files_limit(max_connections: int) -> int:
    """Lift the soft limit on open files to the hard one; return the limit now in force.

    Logs a warning naming ``http.max_connections`` when the cap plus the files the rest of the
    server needs (`FILES_RESERVED`) do not fit.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, wanted, exc)
    if soft != resource.RLIM_INFINITY and max_connections + FILES_RESERVED > soft:
        log.warning("http.max_connections is %d but the process may open only %d files and "
                    "keeps %d for the store, media and the gateway: lower http.max_connections "
                    "or raise LimitNOFILE (systemd) / ulimit -n", max_connections, soft,
                    FILES_RESERVED)
    return soft
