"""Scenario webhooks, the client (intercept/runtime/webhooks.py): a plain HTTP server on
127.0.0.1 answers; timing that matters (timeouts, Retry-After) runs on MockClock."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio

from intercept.foundation.metrics import Metrics
from intercept.runtime.webhooks import (
    MAX_FIELD_CHARS,
    MAX_FIELDS,
    Hook,
    Webhooks,
    WebhookSettings,
    reply_fields,
)

PAYLOAD = {"his_name": "Mike", "when": "9pm", "city.name": "Seattle"}


class Zero:
    """A backoff random source that waits nothing (real-clock tests stay fast)."""

    def uniform(self, a: float, b: float) -> float:
        return 0.0


def response(status: int = 200, body: bytes | str | dict[str, Any] = b"", *,
             headers: dict[str, str] | None = None) -> bytes:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Service:
    """A one-request-per-connection HTTP server; `answers` are raw replies, in turn (None:
    never answer). `requests` holds (headers, body) of each request read."""

    answers: list[bytes | None]
    port: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += await stream.receive_some(65536)
        self.requests.append((headers, body))
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if answer is None:
            await trio.sleep_forever()
        await stream.send_all(answer)
        await stream.aclose()


@asynccontextmanager
async def serving(*answers: bytes | None) -> AsyncIterator[Service]:
    service = Service(list(answers))
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(
            trio.serve_tcp, service.handle, 0, host="127.0.0.1"))
        service.port = listeners[0].socket.getsockname()[1]
        yield service
        nursery.cancel_scope.cancel()


def hooks(url: str, *, allow: tuple[str, ...] = ("127.0.0.1",), allow_private: bool = True,
          metrics: Metrics | None = None, max_reply_bytes: int = 65536,
          resolver: Callable[..., Any] | None = None, **hook: Any) -> Webhooks:
    settings = WebhookSettings(hooks={"crm": Hook(name="crm", url=url, **hook)}, allow=allow,
                               allow_private=allow_private, max_reply_bytes=max_reply_bytes)
    return Webhooks(settings, metrics=metrics, rng=Zero(), resolver=resolver)  # type: ignore[arg-type]


async def call(client: Webhooks, key: str = "12.3") -> Any:
    try:
        return await client.call("crm", PAYLOAD, key)
    finally:
        await client.aclose()


# -- answers


async def test_a_json_reply_gives_its_scalar_fields():
    reply = {"meet": "yes", "count": 3, "vip": True, "nested": {"a": 1}, "list": [1],
             "none": None, "bad name": "x", "note": "a\x00b\nc"}
    metrics = Metrics()
    async with serving(response(200, reply)) as service:
        answer = await call(hooks(service.url, metrics=metrics, secret="s3cret"))
    assert answer.ok and answer.status == 200 and answer.error == ""
    assert answer.fields == {"meet": "yes", "count": "3", "vip": "true", "note": "ab\nc"}
    ((headers, body),) = service.requests
    sent = json.loads(body)
    assert sent == {"call": "crm", "key": "12.3", "vars": PAYLOAD}
    assert headers["idempotency-key"] == "12.3"
    assert headers["content-type"] == "application/json"
    digest = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["x-intercept-signature"] == f"sha256={digest}"
    assert metrics.webhook_calls.labels(call="crm", result="ok")._value.get() == 1
    assert metrics.webhook_seconds.labels(call="crm")._sum.get() >= 0


async def test_without_a_secret_there_is_no_signature():
    async with serving(response(204)) as service:
        answer = await call(hooks(service.url))
    assert answer.ok and answer.status == 204 and answer.fields == {}
    assert "x-intercept-signature" not in service.requests[0][0]


async def test_a_reply_that_is_not_json_is_ok_without_fields():
    async with serving(response(200, "<html>thanks</html>")) as service:
        answer = await call(hooks(service.url))
    assert answer.ok and answer.fields == {}


def test_reply_fields_are_bounded():
    many = {f"f{i}": "x" * (MAX_FIELD_CHARS + 50) for i in range(MAX_FIELDS + 10)}
    fields = reply_fields(json.dumps(many).encode())
    assert len(fields) == MAX_FIELDS and next(iter(fields)) == "f0"
    assert all(len(v) == MAX_FIELD_CHARS for v in fields.values())
    assert reply_fields(b"[1, 2]") == {} and reply_fields(b"{") == {} and reply_fields(b"") == {}


async def test_an_oversized_reply_is_refused():
    big = {"blob": "x" * 5000}
    async with serving(response(200, big)) as service:
        answer = await call(hooks(service.url, max_reply_bytes=1024))
    assert not answer.ok and answer.error == "refused"
    assert "webhooks.max_reply_bytes (1024)" in answer.detail
    assert len(service.requests) == 1  # never retried


# -- retries


async def test_a_5xx_is_retried_until_it_works():
    async with serving(response(500), response(503), response(200, {"ok": "1"})) as service:
        answer = await call(hooks(service.url, retries=3))
    assert answer.ok and answer.attempts == 3 and answer.fields == {"ok": "1"}
    keys = {headers["idempotency-key"] for headers, _ in service.requests}
    bodies = {body for _, body in service.requests}
    assert keys == {"12.3"} and len(bodies) == 1  # every retry is the same call


async def test_retries_are_bounded():
    async with serving(response(500)) as service:
        answer = await call(hooks(service.url, retries=2))
    assert not answer.ok and answer.error == "failed" and answer.status == 500
    assert answer.attempts == 3 and len(service.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_4xx_is_not_retried(status):
    metrics = Metrics()
    async with serving(response(status), response(200)) as service:
        answer = await call(hooks(service.url, metrics=metrics))
    assert not answer.ok and answer.error == "failed" and answer.status == status
    assert len(service.requests) == 1
    assert metrics.webhook_calls.labels(call="crm", result="failed")._value.get() == 1


@pytest.mark.parametrize("status", [408, 429])
async def test_408_and_429_are_retried(status):
    async with serving(response(status), response(200)) as service:
        answer = await call(hooks(service.url))
    assert answer.ok and len(service.requests) == 2


async def test_retry_after_is_honoured(autojump_clock):
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(trio.current_time())
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "7"})
        return httpx.Response(200, json={"seen": "yes"})

    settings = WebhookSettings(hooks={"crm": Hook(name="crm", url="https://crm.example.org/h")},
                               allow=("crm.example.org",))
    client = Webhooks(settings, transport=httpx.MockTransport(handler), rng=Zero(),
                      resolver=public)
    answer = await call(client)
    assert answer.ok and answer.fields == {"seen": "yes"}
    assert calls[1] - calls[0] >= 7


async def public(host: str, port: int) -> list[str]:
    return {"crm.example.org": ["93.184.216.34"]}.get(host, ["10.0.0.7"])


# -- time


async def test_a_service_that_never_answers_times_out(autojump_clock):
    metrics = Metrics()
    async with serving(None) as service:
        begun = trio.current_time()
        answer = await call(hooks(service.url, metrics=metrics, timeout=5.0, retries=1,
                                  deadline=60.0))
        took = trio.current_time() - begun
    assert not answer.ok and answer.error == "timeout" and answer.status == 0
    assert answer.attempts == 2 and 10 <= took < 60
    assert metrics.webhook_calls.labels(call="crm", result="timeout")._value.get() == 1


async def test_the_deadline_bounds_every_attempt(autojump_clock):
    async with serving(None) as service:
        begun = trio.current_time()
        answer = await call(hooks(service.url, timeout=10.0, retries=5, deadline=15.0))
        took = trio.current_time() - begun
    assert not answer.ok and answer.error == "timeout" and took <= 15.5
    assert answer.attempts == 2


async def test_a_closed_port_fails_after_its_retries():
    async with serving(response(200)) as service:
        url = service.url
    answer = await call(hooks(url, retries=1))
    assert not answer.ok and answer.error == "failed" and answer.attempts == 2
    assert "could not be reached" in answer.detail


# -- the guard


async def test_a_private_address_is_refused_unless_allowed():
    async with serving(response(200)) as service:
        url = service.url.replace("http://", "https://")
        answer = await call(hooks(url, allow_private=False))
    assert not answer.ok and answer.error == "refused"
    assert "127.0.0.1" in answer.detail and "webhooks.allow_private" in answer.detail
    assert service.requests == []


async def test_a_name_resolving_to_a_private_address_is_refused():
    settings = WebhookSettings(hooks={"crm": Hook(name="crm", url="https://crm.example.org/h")},
                               allow=("crm.example.org",))

    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    async def private(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    client = Webhooks(settings, transport=httpx.MockTransport(handler), resolver=private)
    answer = await call(client)
    assert answer.error == "refused" and "169.254.169.254" in answer.detail


async def test_a_host_not_allowed_is_refused():
    async with serving(response(200)) as service:
        answer = await call(hooks(service.url, allow=("crm.example.org",)))
    assert answer.error == "refused" and "webhooks.allow" in answer.detail
    assert service.requests == []


async def test_a_redirect_to_a_private_address_is_refused():
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(307, headers={"Location": "https://inside.example.org/admin"})

    settings = WebhookSettings(
        hooks={"crm": Hook(name="crm", url="https://crm.example.org/h")},
        allow=("crm.example.org", "inside.example.org"))
    client = Webhooks(settings, transport=httpx.MockTransport(handler), resolver=public)
    answer = await call(client)
    assert answer.error == "refused" and "10.0.0.7" in answer.detail
    assert len(sent) == 1 and sent[0].url.host == "93.184.216.34"
    assert sent[0].headers["host"] == "crm.example.org"


async def test_a_307_redirect_to_an_allowed_host_posts_the_same_body():
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            return httpx.Response(307, headers={"Location": "/moved"})
        return httpx.Response(200, json={"done": "1"})

    settings = WebhookSettings(hooks={"crm": Hook(name="crm", url="https://crm.example.org/h")},
                               allow=("crm.example.org",))
    client = Webhooks(settings, transport=httpx.MockTransport(handler), resolver=public)
    answer = await call(client)
    assert answer.ok and answer.fields == {"done": "1"}
    assert [r.method for r in sent] == ["POST", "POST"] and sent[0].content == sent[1].content


async def test_plain_http_is_refused_without_allow_private():
    settings = WebhookSettings(hooks={"crm": Hook(name="crm", url="http://crm.example.org/h")},
                               allow=("crm.example.org",))
    client = Webhooks(settings, resolver=public)
    answer = await call(client)
    assert answer.error == "refused" and "only https" in answer.detail


async def test_an_unknown_webhook_is_refused():
    client = Webhooks(WebhookSettings())
    answer = await client.call("nope", {}, "1.1")
    assert answer.error == "refused" and "nope" in answer.detail
