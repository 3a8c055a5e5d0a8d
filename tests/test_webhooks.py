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

from intercept.config import config_from_dict
from intercept.errors import ConfigError, ScenarioErrors
from intercept.foundation.metrics import Metrics
from intercept.gateways import SimGateway
from intercept.runtime.webhooks import (
    MAX_FIELD_CHARS,
    MAX_FIELDS,
    Hook,
    Webhooks,
    WebhookSettings,
    reply_fields,
)
from intercept.server import Server

from helpers import ECHO, OUR, make_config, registry, running

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


# -- through the server (the simulator gateway, a real HTTP service on 127.0.0.1, real time)

BUYER = "+12065557777"
BOOKING = """
name: booking
version: 1
start: hello
states:
  hello:
    expect:
      - regex: "i'?m (?P<his_name>[a-z]+)"
        goto: check
      - otherwise: true
        say: "who's this?"
        stay: true
  check:
    set: {when: "9pm"}
    webhook: {call: crm, send: [his_name, when, city.name]}
    expect:
      - otherwise: true
        stay: true
    on_webhook:
      - field: place
        say: "ok {his_name}, meet at {crm.place} {when}"
        goto: booked
      - otherwise: true
        say: "sry cant tonight ({crm.error})"
        goto: failed
  booked:
    end: booked
  failed:
    end: failed
"""


def booking_config(url: str, **hook: Any) -> Any:
    return make_config("booking", webhooks={"allow": ["127.0.0.1"], "allow_private": True,
                                            "crm": {"url": url, **hook}})


async def test_a_scenario_posts_chosen_variables_and_answers_with_a_field(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("INTERCEPT_TEST_CRM_SECRET", "k3y")
    async with serving(response(200, {"place": "the mall", "id": 42})) as service:
        config = booking_config(service.url, secret_env="INTERCEPT_TEST_CRM_SECRET")
        async with running(tmp_path, config, reg=registry(BOOKING)) as (server, phones):
            for text in ("hey", "i'm mike"):
                done = await server.gateway.inject(their_number=BUYER, our_number=OUR,
                                                   text=text)
                await server.settled(done.conversation_id, done.conv_seq)
            await phones.wait_for(2, timeout=20)
            assert phones.by_number[BUYER] == ["who's this?", "ok mike, meet at the mall 9pm"]
            ((headers, body),) = service.requests
            assert json.loads(body)["vars"] == {"his_name": "mike", "when": "9pm",
                                                "city.name": "Seattle"}
            assert BUYER.lstrip("+") not in body.decode() + json.dumps(headers)
            assert headers["idempotency-key"] == f"{done.conversation_id}.3"
            assert headers["x-intercept-signature"] == "sha256=" + hmac.new(
                b"k3y", body, hashlib.sha256).hexdigest()
            assert server.store.query("SELECT outcome, pending_lookup FROM conversations") == [
                ("booked", None)]
            assert server.metrics.registry.get_sample_value(
                "intercept_webhook_calls_total", {"call": "crm", "result": "ok"}) == 1


async def test_a_failed_call_takes_the_otherwise_entry(tmp_path):
    async with serving(response(404)) as service, running(
            tmp_path, booking_config(service.url), reg=registry(BOOKING)) as (server, phones):
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="i'm mike")
        await phones.wait_for(1, timeout=20)
        assert phones.by_number[BUYER] == ["sry cant tonight (failed)"]
        assert len(service.requests) == 1


async def test_a_call_cut_by_a_restart_is_made_again_with_the_same_key(tmp_path):
    async with serving(None) as hanging:  # takes the call, never answers
        config = booking_config(hanging.url, timeout="60s", deadline="60s")
        async with running(tmp_path, config, reg=registry(BOOKING)) as (server, phones):
            await server.gateway.inject(their_number=BUYER, our_number=OUR, text="i'm mike")
            with trio.fail_after(20):
                while not hanging.requests:
                    await trio.sleep(0.02)
            assert server.store.query("SELECT pending_lookup FROM conversations") == [
                ("webhook:crm",)]
    async with serving(response(200, {"place": "the park"})) as service, running(
            tmp_path, booking_config(service.url), reg=registry(BOOKING)) as (server, phones):
        await phones.wait_for(1, timeout=20)
        assert phones.by_number[BUYER] == ["ok mike, meet at the park 9pm"]
    ((first, first_body),) = hanging.requests
    ((again, again_body),) = service.requests
    assert again["idempotency-key"] == first["idempotency-key"] and again_body == first_body


def test_the_server_refuses_a_scenario_calling_an_unconfigured_webhook(tmp_path):

    with pytest.raises(ConfigError) as info:
        Server(make_config("booking"), registry=registry(BOOKING), gateway=SimGateway(),
               store_path=tmp_path / "x.db")
    message = str(info.value)
    assert "scenario 'booking', state 'check'" in message and "webhook 'crm'" in message
    assert "[webhooks.crm]" in message


async def test_a_reload_refuses_a_scenario_calling_an_unconfigured_webhook(tmp_path):

    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "echo.yaml").write_text(ECHO)
    config = make_config("echo", scenarios={"dir": str(folder)})
    async with running(tmp_path, config, from_folder=True) as (server, _):
        (folder / "booking.yaml").write_text(BOOKING)
        with pytest.raises(ScenarioErrors) as info:
            await server.reload()
        assert "calls webhook 'crm'" in str(info.value)
        assert "booking.yaml" in str(info.value)
        assert server.registry.current("booking") is None


def test_webhook_config_errors_name_the_key():

    with pytest.raises(ConfigError) as info:
        config_from_dict({"webhooks": {"allow": ["crm.example.org"],
                                       "crm": {"url": "https://evil.example.net/h"},
                                       "slow": {"url": "http://crm.example.org/h",
                                                "retries": 11}}}, environ={})
    message = str(info.value)
    assert "webhooks.crm.url: its host evil.example.net is not in webhooks.allow" in message
    assert "webhooks.slow.url" in message and "webhooks.slow.retries" in message
    with pytest.raises(ConfigError, match=r"webhooks\.crm\.timeout"):
        config_from_dict({"webhooks": {"crm": {"url": "https://a.org/", "timeout": "soon"}}},
                         environ={})
    with pytest.raises(ConfigError, match=r"webhooks\.crm\.urll: unknown field"):
        config_from_dict({"webhooks": {"crm": {"urll": "https://a.org/"}}}, environ={})


def test_a_secret_env_that_is_not_set_is_a_config_error():

    config = config_from_dict({"webhooks": {"allow": ["a.org"], "crm": {
        "url": "https://a.org/h", "secret_env": "NOT_SET_ANYWHERE"}}}, environ={})
    with pytest.raises(ConfigError, match=r"webhooks\.crm\.secret_env: the environment "
                                          r"variable NOT_SET_ANYWHERE is not set"):
        WebhookSettings.from_config(config, environ={})
    settings = WebhookSettings.from_config(config, environ={"NOT_SET_ANYWHERE": "s"})
    assert settings.hooks["crm"].secret == "s" and settings.hooks["crm"].timeout == 10.0


def test_the_configuration_reference_documents_every_webhook_key():
    from pathlib import Path

    import msgspec

    from intercept.config import WebhookConfig, WebhooksConfig
    from intercept.engine.durations import Duration

    doc = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text(
        encoding="utf-8")
    part = doc.split("## `[webhooks]`", 1)[1].split("\n## ", 1)[0]
    for struct in (WebhooksConfig, WebhookConfig):
        for key in msgspec.structs.fields(struct):
            if key.name == "calls":
                continue
            if key.required:
                row = f"| `{key.name}` | *required* |"
            else:
                default = (key.default_factory() if key.default is msgspec.NODEFAULT
                           else key.default)
                text = (f'"{default}"' if isinstance(default, Duration)
                        else str(default).lower() if isinstance(default, bool)
                        else json.dumps(default))
                row = f"| `{key.name}` | `{text}` |"
            assert row in part, f"docs/configuration.md [webhooks] lacks {row}"


def test_lint_with_a_config_names_a_webhook_the_config_lacks(tmp_path):
    from click.testing import CliRunner

    from intercept.cli import main

    scenario = tmp_path / "booking.yaml"
    scenario.write_text(BOOKING, encoding="utf-8")
    config = tmp_path / "intercept.toml"
    config.write_text('[cities.seattle]\nname = "Seattle"\nlink = "https://help.example/sea"\n',
                      encoding="utf-8")
    result = CliRunner().invoke(main, ["scenario", "lint", "--config", str(config),
                                       str(scenario)])
    assert result.exit_code == 1
    assert (f"{scenario}:14:5: error: states.check.webhook: scenario 'booking', state 'check': "
            "calls webhook 'crm', which the config does not define") in result.output
    config.write_text(config.read_text() + '\n[webhooks]\nallow = ["crm.example.org"]\n'
                      '[webhooks.crm]\nurl = "https://crm.example.org/h"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["scenario", "lint", "--config", str(config),
                                       str(scenario)])
    assert "webhook" not in result.output and result.exit_code == 0, result.output


async def test_at_most_concurrency_attempts_are_in_flight(autojump_clock):
    flying = {"now": 0, "most": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        flying["now"] += 1
        flying["most"] = max(flying["most"], flying["now"])
        await trio.sleep(1)
        flying["now"] -= 1
        return httpx.Response(200, json={"n": "1"})

    settings = WebhookSettings(hooks={"crm": Hook(name="crm", url="https://crm.example.org/h")},
                               allow=("crm.example.org",), concurrency=2)
    client = Webhooks(settings, transport=httpx.MockTransport(handler), resolver=public)
    answers = []

    async def one(i: int) -> None:
        answers.append(await client.call("crm", PAYLOAD, f"1.{i}"))

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(one, i)
    await client.aclose()
    assert flying["most"] == 2 and all(a.ok and a.attempts == 1 for a in answers)
    assert len(answers) == 6


def test_a_reload_that_changes_webhooks_is_refused_naming_the_keys():
    from intercept.runtime.config_reload import restart_only

    old = config_from_dict({"webhooks": {"allow": ["a.org"], "crm": {"url": "https://a.org/h"}}},
                           environ={})
    new = config_from_dict({"webhooks": {"allow": ["a.org"], "crm": {
        "url": "https://a.org/x", "timeout": "5s"}, "more": {"url": "https://a.org/n"}}},
        environ={})
    assert restart_only(old, new) == ["webhooks.crm.timeout", "webhooks.crm.url",
                                      "webhooks.more"]
    assert restart_only(old, old) == []
