"""Who may call the admin API: tokens from the config and the store, and failed attempts.

A presented token is looked for among the configured ones (`auth.Authenticator`), then in the
store (`intercept token create`). A wrong or malformed token is counted in
``intercept_api_auth_failures``, logged (at most one line a minute, never the token), written
to the audit log, and counted against the client's address: after ``api.max_failures`` within
``api.failure_window`` every API request from that address is answered 429 with Retry-After
for ``api.lockout``. A request without any token is counted but neither audited nor held
against its address (a dashboard without a token should not lock out its proxy's address).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from ..config import Config, duration
from ..store import StoreClosed
from ..store.tokens import TouchTokens, find_token
from .auth import Authenticator, AuthError, Principal, Role, bearer, check_role
from .lockout import FailureLimiter
from .routing import Request, Response, error_response

if TYPE_CHECKING:
    from ..foundation.metrics import Metrics
    from ..store import Store
    from ..store.reads import Reads

log = logging.getLogger(__name__)

LOG_EVERY = 60.0
"""Seconds between two log lines about failed authentications."""
TOUCH_EVERY = 60.0
"""A stored token's last use is written at most this often."""


class Access:
    """Authenticates API requests (`check`) and keeps the failure bookkeeping."""

    def __init__(self, config: Config, *, reads: Reads, store: Store, metrics: Metrics,
                 wall: Callable[[], float]):
        self.tokens = Authenticator.from_config(config)
        api = config.api
        self.limiter = FailureLimiter(max_failures=api.max_failures,
                                      window=duration(api.failure_window),
                                      lockout=duration(api.lockout))
        self.reads, self.store, self.metrics, self.wall = reads, store, metrics, wall
        self._failures = metrics.api_auth_failures
        self._touched: dict[str, float] = {}
        self._logged_at = -math.inf
        self._unlogged = 0

    async def check(self, request: Request, needed: Role) -> Principal:
        """The caller's principal if it has the `needed` role; else raise `AuthError`."""
        client = request.client or "unknown"
        now = trio.current_time()
        wait = self.limiter.retry_after(client, now)
        if wait:
            self._failures.labels("locked").inc()
            seconds = math.ceil(wait)
            raise AuthError(429, f"too many failed authentications from {client}: try again "
                                 f"in {seconds} seconds", reason="locked", retry_after=seconds)
        try:
            presented = bearer(request.header(b"authorization"))
            principal = self.tokens.find(presented) or await self._stored(presented, now)
            return check_role(principal, needed)
        except AuthError as exc:
            if exc.status == 401:
                self._failed(exc, client, now, request)
            raise

    async def _stored(self, presented: str, now: float) -> Principal | None:
        try:
            found = await self.reads.run(find_token, presented)
        except sqlite3.Error:
            log.exception("cannot read the API tokens of the store")
            raise AuthError(503, "the server cannot read its tokens just now; try again, and "
                                 "see the server log if it lasts") from None
        if found is None:
            return None
        name, role = found
        if now - self._touched.get(name, -math.inf) >= TOUCH_EVERY:
            self._touched[name] = now
            with contextlib.suppress(StoreClosed):
                await self.store.post(TouchTokens([name], now=self.wall()))
        return Principal(name, Role[role])

    def _failed(self, exc: AuthError, client: str, now: float, request: Request) -> None:
        self._failures.labels(exc.reason).inc()
        if exc.reason == "missing":
            return
        exc.audit = True
        exc.detail = f"authentication failed: {exc.reason} token from {client}"
        if self.limiter.fail(client, now):
            exc.detail += f"; locked out for {self.limiter.lockout:g} s"
        if now - self._logged_at >= LOG_EVERY:
            more = (f" ({self._unlogged} more failures since the last line)"
                    if self._unlogged else "")
            log.warning("API %s on %s %s%s", exc.detail, request.method, request.path, more)
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1


def auth_error_response(exc: AuthError) -> Response:
    """The answer to a refused request, with WWW-Authenticate or Retry-After."""
    response = error_response(exc.status, exc.message)
    if exc.status == 401:
        response.headers.append((b"www-authenticate", b'Bearer realm="intercept"'))
    if exc.retry_after is not None:
        response.headers.append((b"retry-after", str(exc.retry_after).encode()))
    if exc.detail:
        response.detail = exc.detail
    return response
