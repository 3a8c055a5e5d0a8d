"""The media fetcher: downloads the photos (MMS media) buyers send and stores them by SHA-256.

`Ingest` writes one 'pending' row in the `media` table per media URL of an inbound message.
`MediaFetcher.run()` reads the due rows from the store (so pending work survives a restart),
fetches at most `media.concurrency` at once, and records each row's outcome:

- ``stored``: the bytes are in ``media_dir/ab/abcdef…`` (the full SHA-256 in hex, its first two
  characters as a folder; see `media_path`), written atomically with mode 0o600;
- ``refused``: the URL breaks the rules in ``[media]`` (host not allowed, private address,
  too large, wrong content type): never retried;
- ``failed``: the host says the media is gone (403, 404, 410, ...) or every attempt failed;
- still ``pending`` with a later ``next_attempt_at``: a timeout, a connection error, 429 or a
  5xx; retried with exponential backoff until ``media.max_attempts``.

The guard against server-side request forgery is `intercept.foundation.safe_http` (shared with
scenario webhooks): every host (the first and each redirect's) must be in
``media.allowed_hosts``, every address it resolves to must be public, and the request goes to
that checked address, so a second DNS answer cannot point the fetch elsewhere. Redirects are
followed by hand, at most `MAX_REDIRECTS`, and credentials go only to the host they belong to.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import trio

from ..config import MediaConfig
from ..foundation import safe_http
from ..foundation.backoff import backoff, parse_retry_after
from ..foundation.metrics import Metrics
from ..foundation.phone import mask
from ..foundation.safe_http import (  # noqa: F401  (host_allowed, is_public_address: re-exported)
    Guard,
    GuardError,
    Resolver,
    host_allowed,
    is_public_address,
    read_capped,
    resolve,
)
from ..store.media_ops import (
    GaveUpStatus,
    MediaGaveUp,
    MediaRetry,
    MediaStored,
    NextMediaAttempt,
    PendingMedia,
    PendingRow,
)

if TYPE_CHECKING:
    from ..gateways import InboundMessage
    from ..store import Store

log = logging.getLogger(__name__)

def cap_media(messages: list[InboundMessage], limit: int, metrics: Metrics | None = None
              ) -> list[InboundMessage]:
    """`messages` with at most `limit` media URLs each (``media.max_per_message``); the rest
    are counted (``intercept_media_total{result="dropped"}``), logged and never stored."""
    if all(len(m.media) <= limit for m in messages):
        return messages
    capped = []
    for message in messages:
        extra = len(message.media) - limit
        if extra > 0:
            log.warning("a message from %s came with %d media URLs: kept the first %d "
                        "(media.max_per_message), dropped %d", mask(message.their_number),
                        len(message.media), limit, extra)
            if metrics is not None:
                metrics.media.labels("dropped").inc(extra)
            message = msgspec.structs.replace(message, media=message.media[:limit])
        capped.append(message)
    return capped


MAX_REDIRECTS = 5
BACKOFF_BASE = 30.0
"""Seconds before the first retry; each further retry waits twice as long."""
BACKOFF_CAP = 3600.0
BACKOFF_JITTER = 0.1
"""Each wait is stretched or shrunk by up to this fraction, so retries do not march in step."""

_GONE_CODES = frozenset({403, 404, 410})
_LATER_CODES = frozenset({408, 425, 429})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MARGIN = 0.001
"""Seconds added to a wake-up deadline, so the row is due when the loop looks again."""


def media_path(media_dir: Path, sha256: str) -> Path:
    """Where the media with this SHA-256 (64 lowercase hex characters) is stored."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"expected a SHA-256 as 64 lowercase hex characters, got {sha256!r}")
    return Path(media_dir) / sha256[:2] / sha256


class _GiveUp(Exception):
    """The row ends as `status` with the message as its error."""

    def __init__(self, status: GaveUpStatus, message: str):
        super().__init__(message)
        self.status = status


class _TryLater(Exception):
    """This attempt failed for now; `after` is the host's Retry-After in seconds, if any."""

    def __init__(self, message: str, after: float | None = None):
        super().__init__(message)
        self.after = after


class MediaFetcher:
    """Fetches pending media rows. Run `run()` in a nursery; call `wake()` after new rows
    are committed.

    `clock` gives 'now' in Unix seconds, the time base of ``next_attempt_at`` (the server
    passes its ``WallClock.now``; by default a `WallClock` made when `run()` starts, which is
    `time.time` in production and follows MockClock in tests). `transport` replaces the
    network (tests pass `httpx.MockTransport`); `resolver` replaces DNS. `credentials` maps
    an exact host name to the (user, password) sent to it as HTTP Basic auth. `threaded`
    writes files in a worker thread; False writes on the trio thread, as tests do, so that
    MockClock time does not jump during a write.
    """

    def __init__(self, *, store: Store, config: MediaConfig, media_dir: Path,
                 metrics: Metrics | None = None,
                 credentials: Mapping[str, tuple[str, str]] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 resolver: Resolver | None = None, clock: Callable[[], float] | None = None,
                 threaded: bool = True):
        self.timeout = float(config.timeout)
        self.config = config
        self.media_dir = Path(media_dir)
        self._store = store
        self._metrics = metrics
        self._transport = transport
        self._guard = Guard(
            allowed_hosts=tuple(config.allowed_hosts), hosts_key="media.allowed_hosts",
            private_key="media.allow_private_addresses", what="media",
            allow_private=config.allow_private_addresses, resolver=resolver or resolve,
            credentials={host.lower().rstrip("."): pair
                         for host, pair in (credentials or {}).items()},
            max_redirects=MAX_REDIRECTS)
        self._clock = clock
        self._threaded = threaded
        self._concurrency = max(1, config.concurrency)
        self._content_types = frozenset(t.strip().lower() for t in config.content_types)
        self._changed = trio.Event()
        self._in_flight: set[int] = set()
        self._random = random.Random()
        self._results: dict[str, Any] = {}

    # -- life cycle

    def wake(self) -> None:
        """New pending rows were committed: look for due rows now. Never blocks."""
        self._changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Fetch due rows until cancelled, at most ``media.concurrency`` at once.

        With ``media.enabled = false`` it fetches nothing and leaves every row as it is
        (pending rows wait for a run with media enabled); it just idles until cancelled.
        """
        if not self.config.enabled:
            task_status.started()
            await trio.sleep_forever()
        if self._clock is None:
            from ..runtime import WallClock

            self._clock = WallClock().now
        now = self._clock
        async with self._client() as client, trio.open_nursery() as nursery:
            task_status.started()
            while True:
                changed = self._changed = trio.Event()
                deadline = float("inf")
                free = self._concurrency - len(self._in_flight)
                if free > 0:
                    rows: list[PendingRow] = await self._store.call(
                        PendingMedia(now(), free, self._in_flight))
                    for row in rows:
                        self._in_flight.add(row.id)
                        nursery.start_soon(self._fetch_row, client, row,
                                           name=f"media-{row.id}")
                    if len(rows) < free:  # every due row is taken: sleep until the next one
                        at = await self._store.call(NextMediaAttempt(self._in_flight))
                        if at is not None:
                            deadline = trio.current_time() + max(0.0, at - now()) + _MARGIN
                with trio.move_on_at(deadline):
                    await changed.wait()  # set by wake() and by every finished fetch

    def _client(self) -> httpx.AsyncClient:
        return safe_http.client(timeout=self.timeout, concurrency=self._concurrency,
                                user_agent="Intercept media fetcher", transport=self._transport)

    # -- one row

    async def _fetch_row(self, client: httpx.AsyncClient, row: PendingRow) -> None:
        try:
            try:
                with trio.move_on_after(self.timeout) as scope:
                    body, content_type = await self._fetch(client, row.url)
                if scope.cancelled_caught:
                    raise _TryLater(f"the fetch took longer than media.timeout "
                                    f"({self.config.timeout})")
                sha256 = await self._save(body)
            except (_GiveUp, _TryLater):
                raise
            except httpx.TimeoutException as exc:
                raise _TryLater(f"the media host timed out ({type(exc).__name__})") from exc
            except httpx.TransportError as exc:
                raise _TryLater(f"the media host could not be reached ({type(exc).__name__}: "
                                f"{str(exc)[:120]})") from exc
            except OSError as exc:
                log.error("media %d: cannot write to %s: %s", row.id, self.media_dir, exc)
                raise _TryLater(f"the media could not be written to {self.media_dir} "
                                f"({exc.strerror or exc}); check the folder's space and "
                                "permissions") from exc
        except _GiveUp as exc:
            await self._give_up(row, exc.status, str(exc))
        except _TryLater as exc:
            await self._retry(row, str(exc), exc.after)
        except Exception:
            log.exception("media %d: unexpected error while fetching", row.id)
            await self._retry(row, "an unexpected error stopped the fetch (see the server log)",
                              None)
        else:
            size = len(body)
            await self._store.call(MediaStored(row.id, sha256, content_type, size, self._now()))
            self._count("stored")
            if self._metrics is not None:
                self._metrics.media_bytes.inc(size)
            log.info("media %d: stored %d bytes of %s as %s", row.id, size, content_type,
                     sha256[:12])
        finally:
            self._in_flight.discard(row.id)
            self._changed.set()

    async def _give_up(self, row: PendingRow, status: GaveUpStatus, error: str) -> None:
        await self._store.call(MediaGaveUp(row.id, status, error, self._now()))
        self._count(status)
        log.warning("media %d %s: %s", row.id, status, error)

    async def _retry(self, row: PendingRow, error: str, after: float | None) -> None:
        attempts = row.attempts + 1
        if attempts >= self.config.max_attempts:
            await self._give_up(row, "failed", f"gave up after {attempts} attempts: {error}")
            return
        delay = backoff(row.attempts, base=BACKOFF_BASE, cap=BACKOFF_CAP,
                        jitter=(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER), rng=self._random)
        if after is not None:
            delay = max(delay, min(after, BACKOFF_CAP))
        now = self._now()
        await self._store.call(MediaRetry(row.id, error, now + delay, now))
        self._count("retry")
        log.info("media %d: attempt %d failed, retrying in %.0fs: %s", row.id, attempts, delay,
                 error)

    def _now(self) -> float:
        assert self._clock is not None
        return self._clock()

    def _count(self, result: str) -> None:
        if self._metrics is None:
            return
        child = self._results.get(result)
        if child is None:
            child = self._results[result] = self._metrics.media.labels(result=result)
        child.inc()

    # -- the fetch: checks, redirects, body

    async def _fetch(self, client: httpx.AsyncClient, raw_url: str) -> tuple[bytes, str]:
        """The body and content type at `raw_url`, following redirects through the guard;
        raises _GiveUp or _TryLater (or httpx's transport errors) when there is none to keep."""
        headers = {"Accept": ", ".join(sorted(self._content_types)),
                   "Accept-Encoding": "identity"}
        try:
            host, response = await self._guard.open(client, "GET", raw_url, headers=headers)
            try:
                _check_status(host, response)
                content_type = self._check_content_type(host, response)
                body = await read_capped(response, self.config.max_bytes, host=host,
                                         what="media", key="media.max_bytes")
                return body, content_type
            finally:
                await response.aclose()
        except GuardError as exc:
            if exc.outcome == "later":
                raise _TryLater(str(exc)) from exc
            raise _GiveUp(exc.outcome, str(exc)) from exc

    def _check_content_type(self, host: str, response: httpx.Response) -> str:
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in self._content_types:
            raise _GiveUp("refused", f"{host} sent {content_type or 'no content type'}, which "
                                     "is not in media.content_types")
        return content_type

    # -- the file

    async def _save(self, body: bytes) -> str:
        if self._threaded:
            return await trio.to_thread.run_sync(self._write, body)
        return self._write(body)

    def _write(self, body: bytes) -> str:
        """Store `body` under its SHA-256 (once: the same content is written only once)."""
        sha256 = hashlib.sha256(body).hexdigest()
        path = media_path(self.media_dir, sha256)
        try:
            if path.stat().st_size == len(body):
                return sha256
        except FileNotFoundError:
            pass
        self.media_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        temp = path.parent / f".{sha256}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(body)
                file.flush()
                os.fchmod(file.fileno(), 0o600)
                os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # make the rename durable
        finally:
            os.close(folder)
        return sha256


def _check_status(host: str, response: httpx.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    answer = f"{host} answered {status} {response.reason_phrase}".rstrip()
    if status in _GONE_CODES:
        raise _GiveUp("failed", f"{answer}: the media is gone or not ours to fetch")
    if status == 401:
        raise _GiveUp("failed", f"{answer}: check the media credentials for {host}")
    if status in _LATER_CODES or status >= 500:
        raise _TryLater(answer, _retry_after(response))
    raise _GiveUp("failed", f"{answer}, not the media")


def _retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"), cap=BACKOFF_CAP)
