"""The media fetcher: the SSRF guard, redirects, limits, retries and content-addressed storage.

Responses come from `httpx.MockTransport` and DNS from an injected resolver, so nothing here
touches the network; retry timing runs on MockClock.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from intercept.buyers.media import (
    BACKOFF_BASE,
    BACKOFF_JITTER,
    MediaFetcher,
    host_allowed,
    is_public_address,
    media_path,
)
from intercept.config import MediaConfig
from intercept.foundation.metrics import Metrics
from intercept.runtime import WallClock
from intercept.store import Ingest, Store
from intercept.store.media_ops import (
    MediaGaveUp,
    MediaRetry,
    MediaStored,
    NextMediaAttempt,
    PendingMedia,
)

from helpers import OUR, make_config, running

BUYER = "+12065550199"
PUBLIC = "93.184.216.34"
PUBLIC_CDN = "203.0.114.9"  # not a documentation range: those count as reserved
PHOTO = b"\xff\xd8\xff\xe0 a small jpeg " * 10
URL = "https://media.example.com/photos/1.jpg"
HOSTS = {"media.example.com": [PUBLIC], "a.cdn.example.net": [PUBLIC_CDN]}

Handler = Callable[[httpx.Request], Any]


def jpeg(body: bytes = PHOTO, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "image/jpeg", **headers})


def redirect(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"location": location})


@dataclass
class Env:
    store: Store
    fetcher: MediaFetcher
    clock: WallClock
    media_dir: Path
    metrics: Metrics
    requests: list[httpx.Request] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    _ids: int = 0

    async def add(self, *urls: str) -> list[int]:
        """An inbound message carrying `urls`; returns its media row ids."""
        self._ids += 1
        ingested = await self.store.call(Ingest(
            gateway="test", gateway_id=f"in-{self._ids}", our=OUR, their=BUYER, body="pic",
            media=urls, received_at=self.clock.now()))
        self.fetcher.wake()
        rows = self.store.query("SELECT m.id FROM media m JOIN inbound i ON i.seq = "
                                "m.inbound_seq WHERE i.conv_seq = ? AND i.conversation_id = ? "
                                "ORDER BY m.position",
                                (ingested.conv_seq, ingested.conversation_id))
        return [r[0] for r in rows]

    def row(self, media_id: int) -> dict[str, Any]:
        cur = self.store.db.execute("SELECT * FROM media WHERE id = ?", (media_id,))
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))

    async def settle(self, *ids: int, timeout: float = 24 * 3600) -> list[dict[str, Any]]:
        """Wait (in MockClock time) until every row in `ids` is no longer pending."""
        with trio.fail_after(timeout):
            while any(self.row(i)["status"] == "pending" for i in ids):
                await trio.sleep(0.5)
        return [self.row(i) for i in ids]

    def count(self, result: str) -> float:
        value = self.metrics.registry.get_sample_value("intercept_media_total",
                                                       {"result": result})
        return value or 0.0


@asynccontextmanager
async def fetching(tmp_path: Path, handler: Handler, *, hosts: dict[str, list[str]] | None = None,
                   credentials: dict[str, tuple[str, str]] | None = None, start: bool = True,
                   **media: Any) -> AsyncIterator[Env]:
    settings: dict[str, Any] = {"allowed_hosts": ["media.example.com", "*.cdn.example.net"],
                                "max_attempts": 3, "max_bytes": 4096, **media}
    config = MediaConfig(**settings)
    store = Store(tmp_path / "media.db", threaded=False)
    clock = WallClock()
    resolved = HOSTS if hosts is None else hosts
    metrics = Metrics()
    env: Env

    def record(request: httpx.Request) -> Any:
        env.requests.append(request)
        return handler(request)

    async def resolver(host: str, port: int) -> list[str]:
        env.lookups.append(host)
        if host not in resolved:
            raise OSError(-2, "Name or service not known")
        return resolved[host]

    fetcher = MediaFetcher(store=store, config=config, media_dir=tmp_path / "media",
                           metrics=metrics, credentials=credentials,
                           transport=httpx.MockTransport(record), resolver=resolver,
                           clock=clock.now, threaded=False)
    env = Env(store, fetcher, clock, tmp_path / "media", metrics)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            try:
                async with trio.open_nursery() as fetchers:
                    if start:
                        await fetchers.start(fetcher.run)
                    yield env
                    fetchers.cancel_scope.cancel()
            finally:
                store.close()  # the writer is shielded: it ends only when closed
    finally:
        store.shutdown()


# -- storage


async def test_a_photo_is_stored_once_by_sha256(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda request: jpeg()) as env:
        ids = await env.add(URL, "https://media.example.com/photos/same-again.jpg")
        rows = await env.settle(*ids)
        digest = hashlib.sha256(PHOTO).hexdigest()
        path = media_path(env.media_dir, digest)
        assert path == env.media_dir / digest[:2] / digest
        assert path.read_bytes() == PHOTO
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p for p in env.media_dir.rglob("*") if p.is_file()] == [path]  # no temp files
        for row in rows:
            assert row["status"] == "stored"
            assert (row["sha256"], row["content_type"], row["size"]) == (digest, "image/jpeg",
                                                                        len(PHOTO))
            assert row["attempts"] == 1 and row["error"] is None
            assert row["fetched_at"] is not None and row["next_attempt_at"] is None
        assert env.count("stored") == 2
        assert env.metrics.registry.get_sample_value("intercept_media_bytes_total") == \
            2 * len(PHOTO)


async def test_the_request_goes_to_the_checked_address(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda request: jpeg()) as env:
        (media_id,) = await env.add("https://media.example.com:8443/p.jpg?sig=1")
        await env.settle(media_id)
        (request,) = env.requests
        assert request.url.host == PUBLIC and request.url.port == 8443
        assert request.url.path == "/p.jpg" and request.url.query == b"sig=1"
        assert request.headers["host"] == "media.example.com:8443"
        assert request.extensions["sni_hostname"] == "media.example.com"
        assert env.lookups == ["media.example.com"]


async def test_content_type_parameters_are_ignored(tmp_path, autojump_clock):
    handler = lambda request: jpeg(**{"content-type": "Image/JPEG; charset=binary"})  # noqa: E731
    async with fetching(tmp_path, handler) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert (row["status"], row["content_type"]) == ("stored", "image/jpeg")


def test_media_path_wants_a_sha256(tmp_path):
    with pytest.raises(ValueError, match="SHA-256"):
        media_path(tmp_path, "../../etc/passwd")


# -- the SSRF guard


@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1",
                                     "::ffff:127.0.0.1", "0.0.0.0", "fe80::1", "fd00::1",
                                     "100.64.0.1", "224.0.0.1", "64:ff9b::a00:5",
                                     "2002:a00:5::1"])
async def test_a_host_resolving_to_a_private_address_is_refused(tmp_path, autojump_clock,
                                                                 address):
    hosts = {"media.example.com": [address]}
    async with fetching(tmp_path, lambda request: jpeg(), hosts=hosts) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused"
        assert address in row["error"] and "media.allow_private_addresses" in row["error"]
        assert env.requests == []  # nothing was fetched
        assert env.count("refused") == 1


async def test_one_private_address_among_public_ones_is_enough_to_refuse(tmp_path,
                                                                         autojump_clock):
    hosts = {"media.example.com": [PUBLIC, "10.0.0.5"]}
    async with fetching(tmp_path, lambda request: jpeg(), hosts=hosts) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused" and env.requests == []


async def test_private_addresses_can_be_allowed(tmp_path, autojump_clock):
    hosts = {"media.example.com": ["127.0.0.1"]}
    async with fetching(tmp_path, lambda request: jpeg(), hosts=hosts,
                        allow_private_addresses=True) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "stored"
        assert env.requests[0].url.host == "127.0.0.1"


@pytest.mark.parametrize("url", ["https://evil.example.org/x.jpg", "https://cdn.example.net/x.jpg",
                                 "https://media.example.com.evil.org/x.jpg",
                                 "http://169.254.169.254/latest/meta-data/"])
async def test_an_unlisted_host_is_refused(tmp_path, autojump_clock, url):
    async with fetching(tmp_path, lambda request: jpeg()) as env:
        (media_id,) = await env.add(url)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused"
        assert "media.allowed_hosts" in row["error"]
        assert httpx.URL(url).host in row["error"]
        assert env.requests == [] and env.lookups == []


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://media.example.com/x.jpg", "only http and https"),
    ("https://user:secret@media.example.com/x.jpg", "user name or password"),
    ("not a url at all", "only http and https")])
async def test_odd_urls_are_refused(tmp_path, autojump_clock, url, words):
    async with fetching(tmp_path, lambda request: jpeg()) as env:
        (media_id,) = await env.add(url)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused" and words in row["error"]
        assert "secret" not in row["error"]
        assert env.requests == []


def test_host_patterns():
    patterns = ["media.example.com", "*.cdn.example.net"]
    assert host_allowed("MEDIA.example.com.", patterns)
    assert host_allowed("a.b.cdn.example.net", patterns)
    assert not host_allowed("cdn.example.net", patterns)
    assert not host_allowed("evilcdn.example.net", patterns)
    assert not host_allowed("x.media.example.com", patterns)


@pytest.mark.parametrize(("address", "public"), [
    (PUBLIC, True), ("2606:2800:220:1:248:1893:25c8:1946", True), ("::ffff:93.184.216.34", True),
    ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False), ("::ffff:10.0.0.5", False),
    ("fe80::1%eth0", False), ("::", False), ("ff02::1", False), ("240.0.0.1", False),
    ("192.0.2.1", False), ("fec0::1", False)])
def test_public_addresses(address, public):
    assert is_public_address(address) is public


# -- redirects and credentials


async def test_a_redirect_to_an_unlisted_host_is_refused(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda r: redirect("https://evil.example.org/x.jpg")) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused" and "evil.example.org" in row["error"]
        assert len(env.requests) == 1


async def test_a_redirect_to_a_private_address_is_refused(tmp_path, autojump_clock):
    hosts = {**HOSTS, "a.cdn.example.net": ["169.254.169.254"]}

    def handler(request: httpx.Request) -> httpx.Response:
        return redirect("https://a.cdn.example.net/x.jpg", 307)

    async with fetching(tmp_path, handler, hosts=hosts) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused" and "169.254.169.254" in row["error"]
        assert len(env.requests) == 1
        assert env.lookups == ["media.example.com", "a.cdn.example.net"]


async def test_credentials_stay_with_their_host(tmp_path, autojump_clock):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "media.example.com":
            return redirect("https://a.cdn.example.net/signed/x.jpg?token=abc", 307)
        return jpeg()

    credentials = {"media.example.com": ("AC123", "auth-token")}
    async with fetching(tmp_path, handler, credentials=credentials) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "stored"
        first, second = env.requests
        expected = httpx.BasicAuth("AC123", "auth-token")
        assert first.headers["authorization"] == next(
            expected.auth_flow(httpx.Request("GET", URL))).headers["authorization"]
        assert second.headers["host"] == "a.cdn.example.net"
        assert second.url.host == PUBLIC_CDN and second.url.path == "/signed/x.jpg"
        assert "authorization" not in second.headers


async def test_credentials_are_not_sent_after_a_downgrade_to_http(tmp_path, autojump_clock):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            return redirect("http://media.example.com/x.jpg", 301)
        return jpeg()

    credentials = {"media.example.com": ("AC123", "auth-token")}
    async with fetching(tmp_path, handler, credentials=credentials) as env:
        (media_id,) = await env.add(URL)
        await env.settle(media_id)
        first, second = env.requests
        assert "authorization" in first.headers and "authorization" not in second.headers


async def test_a_relative_redirect_is_followed(tmp_path, autojump_clock):
    def handler(request: httpx.Request) -> httpx.Response:
        return jpeg() if request.url.path == "/moved.jpg" else redirect("/moved.jpg")

    async with fetching(tmp_path, handler) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "stored"
        assert [r.headers["host"] for r in env.requests] == ["media.example.com"] * 2


async def test_too_many_redirects_fail(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda r: redirect(str(r.url.path) + "x")) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "failed" and "more than 5" in row["error"]
        assert len(env.requests) == 6


# -- limits


async def test_an_oversized_body_is_refused_by_its_content_length(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda r: jpeg(b"x" * 5000)) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused"
        assert "5000 bytes" in row["error"] and "media.max_bytes (4096)" in row["error"]
        assert not env.media_dir.exists()


async def test_an_oversized_stream_is_cut_off(tmp_path, autojump_clock):
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(1000):
            sent.append(i)
            yield b"y" * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "image/png"}, content=endless())

    async with fetching(tmp_path, handler) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused" and "media.max_bytes (4096)" in row["error"]
        assert "content-length" not in env.requests[0].headers
        assert len(sent) <= 6  # stopped reading soon after the limit
        assert not env.media_dir.exists()


async def test_a_wrong_content_type_is_refused(tmp_path, autojump_clock):
    handler = lambda r: jpeg(b"<html>", **{"content-type": "text/html"})  # noqa: E731
    async with fetching(tmp_path, handler) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "refused"
        assert "text/html" in row["error"] and "media.content_types" in row["error"]


# -- failures and retries


async def test_a_5xx_is_retried_with_backoff_then_stored(tmp_path, autojump_clock):
    answers = [httpx.Response(503), httpx.Response(502), jpeg()]
    async with fetching(tmp_path, lambda r: answers.pop(0)) as env:
        started = trio.current_time()
        (media_id,) = await env.add(URL)
        while env.row(media_id)["attempts"] == 0:
            await trio.sleep(0.5)
        row = env.row(media_id)
        assert row["status"] == "pending" and "503" in row["error"]
        delay = row["next_attempt_at"] - env.clock.now()
        assert BACKOFF_BASE * (1 - BACKOFF_JITTER) - 1 <= delay <= BACKOFF_BASE * (
            1 + BACKOFF_JITTER)
        (row,) = await env.settle(media_id)
        assert row["status"] == "stored" and row["attempts"] == 3 and row["error"] is None
        waited = trio.current_time() - started
        assert waited >= (BACKOFF_BASE + 2 * BACKOFF_BASE) * (1 - BACKOFF_JITTER)
        assert len(env.requests) == 3
        assert env.count("retry") == 2 and env.count("stored") == 1


async def test_attempts_run_out(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda r: httpx.Response(500)) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "failed" and row["attempts"] == 3
        assert row["error"].startswith("gave up after 3 attempts") and "500" in row["error"]
        assert len(env.requests) == 3
        assert (env.count("retry"), env.count("failed")) == (2, 1)


async def test_retry_after_is_respected(tmp_path, autojump_clock):
    answers = [httpx.Response(429, headers={"retry-after": "600"}), jpeg()]
    async with fetching(tmp_path, lambda r: answers.pop(0)) as env:
        (media_id,) = await env.add(URL)
        while env.row(media_id)["attempts"] == 0:
            await trio.sleep(0.5)
        assert env.row(media_id)["next_attempt_at"] - env.clock.now() >= 599
        (row,) = await env.settle(media_id)
        assert row["status"] == "stored"


@pytest.mark.parametrize("status", [404, 403, 410])
async def test_gone_media_fails_for_good(tmp_path, autojump_clock, status):
    async with fetching(tmp_path, lambda r: httpx.Response(status)) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "failed" and str(status) in row["error"]
        await trio.sleep(3 * 3600)
        assert len(env.requests) == 1 and env.count("retry") == 0


async def test_timeouts_and_connection_errors_are_retried(tmp_path, autojump_clock):
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await trio.sleep_forever()  # a host that never answers
        if calls == 2:
            raise httpx.ConnectError("connection refused")
        return jpeg()

    async with fetching(tmp_path, handler, timeout="10s") as env:
        (media_id,) = await env.add(URL)
        while env.row(media_id)["attempts"] == 0:
            await trio.sleep(0.5)
        assert "media.timeout (10s)" in env.row(media_id)["error"]
        while env.row(media_id)["attempts"] == 1:
            await trio.sleep(0.5)
        assert "could not be reached" in env.row(media_id)["error"]
        (row,) = await env.settle(media_id)
        assert row["status"] == "stored" and row["attempts"] == 3


async def test_an_unresolvable_host_is_retried(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda r: jpeg(), hosts={}) as env:
        (media_id,) = await env.add(URL)
        (row,) = await env.settle(media_id)
        assert row["status"] == "failed" and "could not be resolved" in row["error"]
        assert env.lookups == ["media.example.com"] * 3 and env.requests == []


async def test_concurrency_is_bounded(tmp_path, autojump_clock):
    busy = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal busy, peak
        busy += 1
        peak = max(peak, busy)
        await trio.sleep(1)
        busy -= 1
        return jpeg(request.url.path.encode())

    async with fetching(tmp_path, handler, concurrency=2) as env:
        ids = await env.add(*(f"https://media.example.com/{i}.jpg" for i in range(7)))
        rows = await env.settle(*ids)
        assert {row["status"] for row in rows} == {"stored"}
        assert peak == 2
        assert len({row["sha256"] for row in rows}) == 7


async def test_disabled_fetches_nothing(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda r: jpeg(), enabled=False) as env:
        (media_id,) = await env.add(URL)
        await trio.sleep(3600)
        assert env.row(media_id)["status"] == "pending" and env.requests == []


# -- the store ops


async def test_the_ops(tmp_path, autojump_clock):
    async with fetching(tmp_path, lambda r: jpeg(), start=False) as env:
        a, b, c = await env.add("https://m.example/a", "https://m.example/b",
                                "https://m.example/c")
        now = env.clock.now()
        call = env.store.call
        assert [r.url for r in await call(PendingMedia(now, 10))] == [
            "https://m.example/a", "https://m.example/b", "https://m.example/c"]
        assert [r.id for r in await call(PendingMedia(now, 1, exclude_ids=[a]))] == [b]
        assert await call(PendingMedia(now - 1, 10)) == []
        assert await call(MediaRetry(a, "the host answered 503", now + 90, now))
        assert await call(NextMediaAttempt()) == pytest.approx(now)
        assert await call(NextMediaAttempt(exclude_ids=[b, c])) == pytest.approx(now + 90)
        assert [r.id for r in await call(PendingMedia(now, 10))] == [b, c]
        (row,) = await call(PendingMedia(now + 90, 10, exclude_ids=[b, c]))
        assert (row.id, row.attempts) == (a, 1)
        assert await call(MediaStored(b, "0" * 64, "image/png", 3, now))
        assert await call(MediaGaveUp(c, "refused", "no", now))
        assert not await call(MediaGaveUp(b, "failed", "late", now))  # only pending rows change
        assert env.row(b)["status"] == "stored" and env.row(c)["status"] == "refused"
        with pytest.raises(ValueError, match="'refused' or 'failed'"):
            MediaGaveUp(a, "stored", "x", now)  # type: ignore[arg-type]


# -- next to a whole server


async def test_a_photo_sent_to_the_server_is_fetched(tmp_path, autojump_clock):
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return jpeg(b"photo:" + request.url.path.encode())

    async def resolver(host: str, port: int) -> list[str]:
        return [PUBLIC]

    config = make_config(media={"allowed_hosts": ["media.example.com"]})
    async with running(tmp_path, config, threaded=False) as (server, phones):
        # a message that arrives before the fetcher runs: picked up from the store at start
        first = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hi",
                                            media=("https://media.example.com/early.jpg",))
        fetcher = MediaFetcher(store=server.store, config=server.config.media,
                               media_dir=tmp_path / "media", metrics=server.metrics,
                               transport=httpx.MockTransport(handler), resolver=resolver,
                               clock=server.clock.now, threaded=False)
        async with trio.open_nursery() as nursery:
            await nursery.start(fetcher.run)
            second = await server.gateway.inject(
                their_number=BUYER, our_number=OUR, text="more",
                media=("https://media.example.com/a.jpg", "https://evil.example.org/b.jpg"))
            fetcher.wake()
            await server.settled(second.conversation_id, second.conv_seq)
            with trio.fail_after(600):
                while server.store.query("SELECT count(*) FROM media WHERE status = "
                                         "'pending'")[0][0]:
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
        rows = server.store.query("SELECT inbound_seq, position, status, sha256 FROM media "
                                  "WHERE conversation_id = ? ORDER BY id",
                                  (first.conversation_id,))
        assert [(r[2]) for r in rows] == ["stored", "stored", "refused"]
        for path, row in zip(["/early.jpg", "/a.jpg"], rows, strict=False):
            stored = media_path(tmp_path / "media", row[3]).read_bytes()
            assert stored == b"photo:" + path.encode()
        assert [r.url.path for r in requests] == ["/early.jpg", "/a.jpg"]
        assert phones.by_number[BUYER] == ["re: hi", "re: more"]
        assert server.metrics.registry.get_sample_value(
            "intercept_media_total", {"result": "stored"}) == 2
