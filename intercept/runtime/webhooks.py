"""Scenario webhooks: POST a conversation's chosen variables to a configured URL.

A scenario state with ``webhook: {call: crm, send: [his_name, when]}`` makes the engine ask for
a call (the `Webhook` effect); the actor runs it with `Webhooks.call` and steps the answer as a
`WebhookResult` event (docs/scenarios.md#webhooks). Only the variables the scenario names are
sent, never the person's number.

The request goes through the same SSRF guard as the media fetcher
(`intercept.foundation.safe_http`): the host must be in ``webhooks.allow``, every address must
be public unless ``webhooks.allow_private``, redirects are checked hop by hop, and the reply is
read up to ``webhooks.max_reply_bytes``. Each call carries an ``Idempotency-Key`` (the
conversation and turn that asked for it, the same on every retry and after a restart) and, with
a secret, an ``X-Intercept-Signature`` (HMAC-SHA256 of the body, as hand-off alerts sign).

Attempts: the first, then up to ``retries`` more after a timeout, a connection error, 408, 429
or a 5xx, waiting with exponential backoff or the reply's ``Retry-After``; every attempt is
bounded by ``timeout`` and all of them by ``deadline``. Another 4xx is not retried. The answer:

- ``ok``: a 2xx reply; the top-level scalar fields of a JSON object reply become ``fields``
  (at most `MAX_FIELDS`, names of letters, digits and '_', values cut at `MAX_FIELD_CHARS`);
- ``timeout``: the last attempt timed out, or the deadline passed;
- ``failed``: the service answered an error, could not be reached, or redirected badly;
- ``refused``: the rules refused the call or its reply (host not allowed, private address, a
  reply larger than the cap); never retried.

The payload is never logged at INFO or above.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import httpx
import msgspec
import trio

from ..config import Config
from ..engine import Machine, Webhook, WebhookResult
from ..engine.compiler import WEBHOOK_FIELD
from ..errors import ConfigError, ScenarioError
from ..foundation import safe_http
from ..foundation.backoff import backoff, parse_retry_after
from ..foundation.safe_http import Guard, GuardError, Resolver
from .handoff_alerts import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

ErrorKind = Literal["timeout", "failed", "refused"]

MAX_FIELDS = 32
"""Fields of a JSON reply kept (the first ones, in the reply's order)."""
MAX_FIELD_CHARS = 500
"""Characters of a reply field's value kept."""
MAX_REDIRECTS = 3
IDEMPOTENCY_HEADER = "Idempotency-Key"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_RETRY_CODES = frozenset({408, 425, 429})
_encode = msgspec.json.Encoder().encode


class Hook(msgspec.Struct, frozen=True, kw_only=True):
    """One configured webhook (``[webhooks.NAME]``), its secret read."""

    name: str
    url: str
    timeout: float = 10.0
    """Seconds one attempt may take."""
    retries: int = 3
    """Attempts after the first."""
    deadline: float = 30.0
    """Seconds all attempts (and the waits between them) may take."""
    secret: str = ""


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True):
    """``[webhooks]``: the webhooks by name and the rules every call follows."""

    hooks: dict[str, Hook] = {}
    allow: tuple[str, ...] = ()
    """Host names (or ``*.suffix``) a webhook may call."""
    allow_private: bool = False
    """Permit private and loopback addresses (tests, a service on this machine)."""
    max_reply_bytes: int = 65536
    concurrency: int = 32
    """Calls in flight at once, over all conversations."""

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str] | None = None
                    ) -> WebhookSettings:
        """``[webhooks]`` with durations in seconds and each secret read from the environment
        variable its ``secret_env`` names; `ConfigError` if one is not set."""
        environ = os.environ if environ is None else environ
        w = config.webhooks
        hooks = {}
        for name, spec in w.calls.items():
            secret = ""
            if spec.secret_env:
                secret = environ.get(spec.secret_env, "")
                if not secret:
                    raise ConfigError(f"{config.source or '<config>'}: webhooks.{name}."
                                      f"secret_env: the environment variable "
                                      f"{spec.secret_env} is not set (or empty); set it to "
                                      "the signing key, or remove secret_env to send "
                                      "unsigned calls")
            hooks[name] = Hook(name=name, url=spec.url, timeout=float(spec.timeout),
                               retries=spec.retries, deadline=float(spec.deadline),
                               secret=secret)
        return cls(hooks=hooks, allow=tuple(w.allow), allow_private=w.allow_private,
                   max_reply_bytes=w.max_reply_bytes, concurrency=w.concurrency)


def unconfigured(machines: Iterable[Machine], configured: Iterable[str]
                 ) -> list[ScenarioError]:
    """A problem for every state of `machines` that calls a webhook not in `configured`
    (scenarios do not know the config: the server checks at start and on reload)."""
    have = set(configured)
    problems = []
    for machine in machines:
        info = getattr(machine, "info", None)
        for name, node in machine.nodes.items():
            if node.actions.webhook is None or node.actions.webhook[0] in have:
                continue
            call = node.actions.webhook[0]
            loc = info.states.get(name) if info is not None else None
            problems.append(ScenarioError(
                f"scenario {machine.name!r}, state {name!r}: calls webhook {call!r}, which the "
                f"config does not define; add [webhooks.{call}] with its url (configured: "
                f"{', '.join(sorted(have)) or 'none'})",
                file=loc.file if loc else "", line=loc.line if loc else 0,
                col=loc.col if loc else 0, path=f"states.{name}.webhook"))
    return problems


class Answer(msgspec.Struct, frozen=True):
    """What a call came to (the actor turns it into the engine's `WebhookResult`)."""

    ok: bool
    status: int = 0
    """The HTTP status of the last reply (0: none)."""
    error: ErrorKind | Literal[""] = ""
    fields: dict[str, str] = {}
    attempts: int = 0
    detail: str = ""
    """Why it failed, for the log (never the payload)."""


def reply_fields(body: bytes) -> dict[str, str]:
    """The top-level scalar fields of a JSON object `body`, as strings, bounded; {} when the
    body is not a JSON object."""
    try:
        data = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    fields: dict[str, str] = {}
    for key, value in data.items():
        if len(fields) >= MAX_FIELDS:
            break
        if not isinstance(key, str) or not WEBHOOK_FIELD.fullmatch(key):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float | str):
            text = str(value)
        else:
            continue  # null, lists and objects are not variables
        fields[key] = _CONTROL.sub("", text)[:MAX_FIELD_CHARS]
    return fields


class _Retry(Exception):
    def __init__(self, error: ErrorKind, detail: str, status: int = 0,
                 after: float | None = None):
        super().__init__(detail)
        self.error, self.status, self.after = error, status, after


class _Final(Exception):
    def __init__(self, error: ErrorKind, detail: str, status: int = 0):
        super().__init__(detail)
        self.error, self.status = error, status


class Webhooks:
    """Calls configured webhooks. `aclose()` when done (the server does on shutdown).

    `transport` replaces the network and `resolver` DNS (tests); `rng` draws the backoff
    jitter; `metrics` is the server's `Metrics` (``intercept_webhook_calls_total{call,result}``,
    ``intercept_webhook_seconds{call}``).
    """

    def __init__(self, settings: WebhookSettings, *, metrics: Any = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 resolver: Resolver | None = None, rng: random.Random | None = None):
        self.settings = settings
        self.metrics = metrics
        self._transport = transport
        self._rng = rng or random.Random()
        self._guard = Guard(allowed_hosts=tuple(settings.allow), hosts_key="webhooks.allow",
                            private_key="webhooks.allow_private", what="webhook",
                            allow_private=settings.allow_private,
                            schemes=frozenset({"https", "http"}) if settings.allow_private
                            else frozenset({"https"}),
                            resolver=resolver or safe_http.resolve,
                            max_redirects=MAX_REDIRECTS)
        self._client: httpx.AsyncClient | None = None
        self._slots = trio.Semaphore(max(1, settings.concurrency))
        """Attempts in flight: more would queue inside httpx's pool, which slows as it grows
        (300 calls at once to a loopback service: ~85-100 calls/s without this bound,
        ~190-370 with it, on a busy 2-core machine)."""

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def result(self, webhook: Webhook, key: str) -> WebhookResult:
        """Make the call the engine asked for; its answer as the event the engine takes."""
        answer = await self.call(webhook.call, webhook.payload, key)
        return WebhookResult(webhook.call, answer.ok, answer.status, answer.error,
                             answer.fields)

    async def call(self, name: str, payload: dict[str, str], key: str) -> Answer:
        """POST `payload` to the webhook `name`; never raises for the service's failures."""
        hook = self.settings.hooks.get(name)
        started = trio.current_time()
        if hook is None:
            answer = Answer(False, error="refused", detail=f"no webhook {name!r} in [webhooks] "
                                                            "of the config")
        else:
            answer = await self._attempts(hook, payload, key)
        if self.metrics is not None:
            self.metrics.webhook_calls.labels(call=name, result=answer.error or "ok").inc()
            self.metrics.webhook_seconds.labels(call=name).observe(
                trio.current_time() - started)
        if not answer.ok:
            log.warning("webhook %s (call %s): %s after %d attempt(s): %s", name, key,
                        answer.error, answer.attempts, answer.detail)
        return answer

    async def _attempts(self, hook: Hook, payload: dict[str, str], key: str) -> Answer:
        body = _encode({"call": hook.name, "key": key, "vars": payload})
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   IDEMPOTENCY_HEADER: key}
        if hook.secret:
            headers[SIGNATURE_HEADER] = sign(hook.secret, body)
        if self._client is None:
            self._client = safe_http.client(
                timeout=max((h.timeout for h in self.settings.hooks.values()), default=10.0),
                concurrency=self.settings.concurrency,
                user_agent="Intercept webhook", transport=self._transport)
        deadline = trio.current_time() + hook.deadline
        attempts = 0
        last = _Retry("timeout", f"no answer within the webhook's deadline ({hook.deadline:g}s)")
        with trio.move_on_at(deadline) as scope:
            while attempts <= hook.retries:
                attempts += 1
                try:
                    async with self._slots:  # a wait for a slot counts against the deadline
                        status, fields = await self._attempt(
                            hook, body, headers, min(deadline, trio.current_time()
                                                     + hook.timeout))
                    return Answer(True, status, fields=fields, attempts=attempts)
                except _Final as exc:
                    return Answer(False, exc.status, exc.error, attempts=attempts,
                                  detail=str(exc))
                except _Retry as exc:
                    last = exc
                if attempts > hook.retries:
                    break
                wait = backoff(attempts - 1, base=1.0, cap=hook.deadline, rng=self._rng)
                if last.after is not None:
                    wait = max(wait, last.after)
                if trio.current_time() + wait >= deadline:
                    break  # the deadline comes first: give the last answer now
                await trio.sleep(wait)
        if scope.cancelled_caught:
            last = _Retry("timeout", f"no answer within the webhook's deadline "
                                     f"({hook.deadline:g}s)")
        return Answer(False, last.status, last.error, attempts=attempts, detail=str(last))

    async def _attempt(self, hook: Hook, body: bytes, headers: dict[str, str], until: float
                       ) -> tuple[int, dict[str, str]]:
        assert self._client is not None
        with trio.move_on_at(until) as scope:
            return await self._send(hook, body, headers)
        assert scope.cancelled_caught
        raise _Retry("timeout", f"no answer within the webhook's timeout ({hook.timeout:g}s)")

    async def _send(self, hook: Hook, body: bytes, headers: dict[str, str]
                    ) -> tuple[int, dict[str, str]]:
        """One POST through the guard: (status, fields) of a 2xx reply, else `_Retry` or
        `_Final`."""
        assert self._client is not None
        try:
            host, response = await self._guard.open(self._client, "POST", hook.url,
                                                     headers=headers, content=body)
            try:
                status = response.status_code
                if 200 <= status < 300:
                    reply = await safe_http.read_capped(
                        response, self.settings.max_reply_bytes, host=host,
                        what="webhook reply", key="webhooks.max_reply_bytes")
                    return status, reply_fields(reply)
                answer = f"{host} answered {status} {response.reason_phrase}".rstrip()
                if status in _RETRY_CODES or status >= 500:
                    raise _Retry("failed", answer, status, parse_retry_after(
                        response.headers.get("retry-after"), cap=hook.deadline))
                raise _Final("failed", answer, status)
            finally:
                await response.aclose()
        except GuardError as exc:
            if exc.outcome == "later":
                raise _Retry("failed", str(exc)) from exc
            raise _Final(exc.outcome, str(exc)) from exc
        except httpx.TimeoutException as exc:
            raise _Retry("timeout", f"the webhook timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retry("failed", f"the webhook could not be reached "
                                   f"({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:  # a reply httpx could not read (bad encoding...)
            raise _Retry("failed", f"the webhook's reply could not be read "
                                   f"({type(exc).__name__})") from exc
