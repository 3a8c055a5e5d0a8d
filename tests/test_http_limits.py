"""HTTP limits: slow headers and bodies are closed, a cap on requests in progress evicts the
slowest, and /healthz answers while many slow clients hold connections."""

from __future__ import annotations

import httpx
import pytest
import trio

from intercept.errors import ConfigError
from intercept.foundation.metrics import Metrics
from intercept.gateways import SimGateway
from intercept.http.limits import HttpLimits, hypercorn_config, raise_open_files_limit
from intercept.server import Server

from helpers import OUR, make_config, registry

SLOW_HEAD = (b"POST /sim/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
             b"content-length: 1000\r\n\r\n{")


def _sample(metrics: Metrics, reason: str) -> float:
    return metrics.registry.get_sample_value("intercept_http_refused_total",
                                             {"reason": reason}) or 0.0


# -- the ASGI wrapper alone, on a mock clock


class _Client:
    """One request fed to the wrapper: `chunks` arrive `gap` seconds apart."""

    def __init__(self, chunks: list[bytes], gap: float):
        self.chunks, self.gap = chunks, gap
        self.status: int | None = None

    async def receive(self) -> dict:
        if not self.chunks:
            await trio.sleep_forever()
        await trio.sleep(self.gap)
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def _echo(scope, receive, send) -> None:
    body = (await receive())["body"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _scope(path: str = "/sim/messages") -> dict:
    return {"type": "http", "path": path, "method": "POST"}


async def test_a_body_must_arrive_whole_within_the_deadline_not_per_byte(autojump_clock,
                                                                          caplog):
    limits = HttpLimits(_echo, body_timeout=10, max_connections=5, max_body=1024)
    slow = _Client([b"x"] * 100, gap=1)  # a byte a second: each read is quick, the body is not
    quick = _Client([b"a", b"b"], gap=1)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limits, _scope(), slow.receive, slow.send)
        nursery.start_soon(limits, _scope(), quick.receive, quick.send)
    assert quick.status == 200
    assert slow.status == 408
    assert trio.current_time() - start == pytest.approx(10)
    assert limits.in_progress == 0
    assert "HTTP limits cut short 1 bodies too slow (408) over 0 s" in caplog.text


async def test_at_the_cap_the_slowest_body_is_closed_and_healthz_bypasses_it(autojump_clock):
    metrics = Metrics()
    limits = HttpLimits(_echo, body_timeout=60, max_connections=2, max_body=1024,
                        metrics=metrics)
    first, second = _Client([b"x"] * 50, gap=1), _Client([b"x"] * 50, gap=1)
    newcomer = _Client([b"{}"], gap=0)
    health = _Client([b""], gap=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limits, _scope(), first.receive, first.send)
        await trio.sleep(0.5)
        nursery.start_soon(limits, _scope(), second.receive, second.send)
        await trio.sleep(5)
        assert limits.in_progress == 2
        await limits(_scope("/healthz"), health.receive, health.send)
        assert health.status == 200  # not counted, not refused
        await limits(_scope(), newcomer.receive, newcomer.send)
        assert newcomer.status == 200
        await trio.sleep(0.1)
        assert first.status == 503  # the oldest slow reader made room
        assert second.status is None
        nursery.cancel_scope.cancel()
    assert _sample(metrics, "evicted") == 1


async def test_at_the_cap_with_every_request_in_its_handler_the_newcomer_gets_503(autojump_clock):
    release = trio.Event()

    async def busy(scope, receive, send) -> None:
        await receive()
        await release.wait()
        await _echo(scope, lambda: _async({"body": b""}), send)

    limits = HttpLimits(busy, body_timeout=60, max_connections=1, max_body=1024)
    working, refused = _Client([b"{}"], gap=0), _Client([b"{}"], gap=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limits, _scope(), working.receive, working.send)
        await trio.sleep(1)
        await limits(_scope(), refused.receive, refused.send)
        assert refused.status == 503
        release.set()
    assert working.status == 200


async def _async(value):
    return value


def test_http_limits_are_configurable_and_checked():
    config = make_config(http={"body_timeout": "5s", "header_timeout": "3s",
                               "max_connections": 7, "max_header_bytes": 4096, "backlog": 50})
    hyper = hypercorn_config(config.http)
    assert (hyper.keep_alive_timeout, hyper.h11_max_incomplete_size, hyper.backlog) == (
        3, 4096, 50)
    with pytest.raises(ConfigError, match=r"http\.max_connections is 0; it must be 1 or more"):
        make_config(http={"max_connections": 0})
    with pytest.raises(ConfigError, match=r"http\.body_timeout"):
        make_config(http={"body_timeout": "soon"})


# -- the whole server over loopback, with short real timeouts


async def _slow_client(address: tuple[str, int], head: bytes, closed: list[float]) -> None:
    """Connect, send `head`, then a byte every 0.2 s until the server closes the connection."""
    stream = await trio.open_tcp_stream(*address)
    started = trio.current_time()
    async with stream:
        await stream.send_all(head)
        with trio.move_on_after(15):
            try:
                while True:
                    with trio.move_on_after(0.2):
                        if await stream.receive_some(4096) == b"":
                            break
                        continue  # an answer (408/503): read on until the close
                    await stream.send_all(b" ")
            except trio.BrokenResourceError:
                pass  # closed while we were sending: a reset
            closed.append(trio.current_time() - started)


@pytest.mark.parametrize("head", [SLOW_HEAD, b"POST /sim/messages HTTP/1.1\r\nhost: x\r\nx-a"],
                         ids=["slow body", "slow headers"])
async def test_slow_clients_are_closed_and_healthz_answers_meanwhile(tmp_path, head):
    config = make_config(http={"enabled": True, "listen": "127.0.0.1:0", "body_timeout": "1s",
                               "header_timeout": "1s", "max_connections": 10})
    server = Server(config, registry=registry(), gateway=SimGateway(),
                    store_path=tmp_path / "l.db")
    clients = 40
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        host, port = server.http_addresses[0].removeprefix("http://").rsplit(":", 1)
        closed: list[float] = []
        async with trio.open_nursery() as slow:
            for _ in range(clients):
                slow.start_soon(_slow_client, (host, int(port)), head, closed)
            await trio.sleep(0.3)
            async with httpx.AsyncClient(base_url=server.http_addresses[0]) as client:
                with trio.fail_after(5):  # a busy machine; without limits: never
                    assert (await client.get("/healthz")).json()["status"] == "ok"
                    r = await client.post("/sim/messages", json={"from": "+12065550199",
                                                                 "to": OUR, "text": "hi"})
                    assert r.status_code == 200, r.text
        server.stop()
    assert len(closed) == clients
    assert max(closed) < 4  # the deadline (1 s) with room for a busy machine; hypercorn alone:
    # 5 s for headers, never for a body
    if head is SLOW_HEAD:
        assert _sample(server.metrics, "body_timeout") + _sample(server.metrics, "evicted") \
            >= clients - 10


async def test_a_monitor_address_serves_only_healthz_and_metrics(tmp_path):
    config = make_config(http={"enabled": True, "listen": "127.0.0.1:0",
                               "monitor_listen": "127.0.0.1:0"})
    server = Server(config, registry=registry(), gateway=SimGateway(),
                    store_path=tmp_path / "m.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        (monitor,) = server.monitor_addresses
        assert monitor not in server.http_addresses
        async with httpx.AsyncClient(base_url=monitor) as client:
            assert (await client.get("/healthz")).json()["status"] == "ok"
            assert (await client.get("/metrics")).status_code == 200
            r = await client.post("/sim/messages", json={"from": "+12065550199", "to": OUR,
                                                         "text": "hi"})
            assert r.status_code == 404
            assert "serves only /healthz and /metrics" in r.json()["error"]
        async with httpx.AsyncClient(base_url=server.http_addresses[0]) as client:
            assert (await client.get("/healthz")).status_code == 200
        server.stop()


def test_the_open_files_limit_is_raised_and_a_cap_too_high_is_named(caplog):
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip(f"hard limit {hard}: nothing to raise to")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert raise_open_files_limit(100) == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        assert "max_connections" not in caplog.text
        raise_open_files_limit(hard)
        assert f"http.max_connections is {hard} but the process may open only {hard} files" \
            in caplog.text
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
