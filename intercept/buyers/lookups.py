"""Caller-name lookups over a Twilio Lookup v2-compatible API, with a cache, a daily budget,
timeouts and a circuit breaker.

    GET {api_url}/v2/PhoneNumbers/{number}?Fields=caller_name,line_type_intelligence

Registered with the runtime's `Lookups` (`install`), a scenario asks for one with
``lookup: caller_name`` (fields ``name``, ``caller_type``, ``line_type``, ``carrier``, ...) or
``lookup: buyer`` (the offline number metadata plus ``caller_name``, ``caller_type``,
``line_type``, ``line_carrier``), and its answer comes back as a `LookupResult` event:
``{caller_name.name}``, ``{buyer.caller_name|}``.

Order of a lookup: the cache (table ``lookup_cache``, `cache_ttl`) answers if it can; an open
circuit fails at once; then one request is taken from the UTC day's budget (``lookup_usage``,
counted in the writer, so restarts do not reset it); then the request, within `timeout`.
A timeout, a connection error, 429 or a 5xx is a failure the breaker counts; after
`breaker_failures` in a row it opens for `breaker_cooldown`, then lets one trial request
through (half-open): its success closes the circuit, its failure opens it again.

Exceptions (all `LookupFailed`, whose message the scenario sees as ``<kind>.error``)::

    LookupFailed
     ├── CircuitOpen     the breaker is open: no request made
     ├── BudgetSpent     the day's budget is used up: no request made
     └── ProviderError   the request failed (timeout, connection, HTTP status)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import trio

from ..config import Config, duration, read_secret
from ..errors import ConfigError
from ..foundation.phone import mask
from ..store.evidence import CachedLookup, ReserveLookup, SaveLookup

if TYPE_CHECKING:
    from ..runtime.lookups import Lookups
    from ..store import Store

log = logging.getLogger(__name__)

FIELDS = "caller_name,line_type_intelligence"
PROVIDER = "twilio"


class LookupFailed(Exception):
    """A lookup gave no answer; the message is a sentence for the scenario and the log."""


class CircuitOpen(LookupFailed):
    pass


class BudgetSpent(LookupFailed):
    pass


class ProviderError(LookupFailed):
    pass


@dataclass(frozen=True, slots=True)
class LookupSettings:
    api_url: str
    account_sid: str
    auth_token: str
    timeout: float = 5.0
    cache_ttl: float = 30 * 86400.0
    daily_budget: int = 500
    breaker_failures: int = 5
    breaker_cooldown: float = 300.0

    @classmethod
    def from_config(cls, config: Config) -> LookupSettings | None:
        """The settings of `[lookups]`, or None when lookups are off."""
        c = config.lookups
        if not c.provider:
            return None
        token = read_secret(c.auth_token, c.auth_token_file, key="lookups.auth_token",
                            source=config.source, base_dir=config.base_dir)
        if not token:
            raise ConfigError(f"{config.source}: lookups.auth_token: give the auth token in "
                              "INTERCEPT_LOOKUPS_AUTH_TOKEN or lookups.auth_token_file")
        return cls(api_url=c.api_url.rstrip("/"), account_sid=c.account_sid, auth_token=token,
                   timeout=duration(c.timeout), cache_ttl=duration(c.cache_ttl),
                   daily_budget=c.daily_budget, breaker_failures=c.breaker_failures,
                   breaker_cooldown=duration(c.breaker_cooldown))


class CircuitBreaker:
    """Closed, open after `failures` consecutive failures, half-open after `cooldown` seconds
    (trio time, so MockClock drives it): one trial call at a time decides."""

    def __init__(self, failures: int, cooldown: float):
        self.failures, self.cooldown = failures, cooldown
        self.consecutive = 0
        self.opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if trio.current_time() >= self.opened_at + self.cooldown else "open"

    def before(self) -> None:
        """Raise `CircuitOpen` unless a call may go out now."""
        state = self.state
        if state == "closed":
            return
        if state == "open" or self._trial:
            assert self.opened_at is not None
            wait = max(0.0, self.opened_at + self.cooldown - trio.current_time())
            raise CircuitOpen(f"lookups are paused after {self.consecutive} failures in a row "
                              f"(the next try in {wait:.0f}s)")
        self._trial = True

    def success(self) -> None:
        self.consecutive, self.opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        self.consecutive += 1
        if self._trial or self.consecutive >= self.failures:
            self.opened_at = trio.current_time()
        self._trial = False

    def release(self) -> None:
        """The call made no request (e.g. no budget): let another trial through."""
        self._trial = False


class TwilioLookup:
    """The `caller_name` provider: `await provider(their_number, our_number) -> fields`."""

    kind = "caller_name"

    def __init__(self, *, store: Store, settings: LookupSettings, clock: Callable[[], float],
                 transport: httpx.AsyncBaseTransport | None = None, metrics: Any = None):
        self.store, self.settings, self.clock = store, settings, clock
        self.transport, self.metrics = transport, metrics
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
        self._client: httpx.AsyncClient | None = None
        self.requests = 0
        """Requests sent (for tests and logs)."""

    async def __call__(self, their_number: str, our_number: str = "") -> dict[str, str]:
        store, now = self.store, self.clock()
        cached = await store.call(CachedLookup(their_number, self.kind, now=now))
        if cached is not None:
            self._count("cached")
            return cached
        self.breaker.before()
        day = datetime.fromtimestamp(now, UTC).date().isoformat()
        if not await store.call(ReserveLookup(day, PROVIDER, self.settings.daily_budget)):
            self.breaker.release()
            self._count("budget")
            raise BudgetSpent(f"the daily budget of {self.settings.daily_budget} lookups is "
                              f"spent (lookups.daily_budget; {day} UTC)")
        try:
            data = await self._request(their_number)
        except ProviderError:
            self.breaker.failure()
            self._count("failed")
            raise
        except LookupFailed:
            self.breaker.success()  # the provider answered: it is up
            self._count("refused")
            raise
        self.breaker.success()
        self._count("ok")
        await store.call(SaveLookup(their_number, self.kind, PROVIDER, data, now=self.clock(),
                                    ttl=self.settings.cache_ttl))
        return data

    async def _request(self, number: str) -> dict[str, str]:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.transport, timeout=self.settings.timeout,
                auth=(self.settings.account_sid, self.settings.auth_token))
        url = f"{self.settings.api_url}/v2/PhoneNumbers/{quote(number, safe='+')}"
        self.requests += 1
        try:
            with trio.fail_after(self.settings.timeout):
                response = await self._client.get(url, params={"Fields": FIELDS})
        except (trio.TooSlowError, httpx.TimeoutException):
            raise ProviderError(f"the lookup service did not answer within "
                                f"{self.settings.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"cannot reach the lookup service: {type(exc).__name__}"
                                ) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderError(f"the lookup service answered {response.status_code}")
        if response.status_code >= 400:
            log.warning("lookup of %s refused: HTTP %d", mask(number), response.status_code)
            raise LookupFailed(f"the lookup service refused the request "
                               f"({response.status_code})")
        try:
            return parse_answer(response.json())
        except (ValueError, TypeError, AttributeError) as exc:
            raise ProviderError(f"the lookup service sent an answer that is not Lookup v2 "
                                f"JSON ({exc})") from None

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.lookups.labels(kind=f"{self.kind}:{PROVIDER}", result=result).inc()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def parse_answer(body: dict[str, Any]) -> dict[str, str]:
    """The fields of a Lookup v2 answer the scenario sees (empty values left out)."""
    caller = body.get("caller_name") or {}
    line = body.get("line_type_intelligence") or {}
    fields = {
        "name": caller.get("caller_name") or "",
        "caller_type": (caller.get("caller_type") or "").lower(),
        "line_type": line.get("type") or "",
        "carrier": line.get("carrier_name") or "",
        "country": body.get("country_code") or "",
        "valid": "" if body.get("valid") is None else ("yes" if body["valid"] else "no"),
    }
    return {k: str(v) for k, v in fields.items() if v}


def install(lookups: Lookups, provider: TwilioLookup | None) -> None:
    """Register `caller_name` (when a provider is configured) and `buyer` (always).

    `buyer` is the offline metadata of the `number` lookup plus, when a provider is
    configured and answers, ``caller_name``, ``caller_type``, ``line_type`` and
    ``line_carrier``; when it cannot answer, ``caller_name_error`` says why (the lookup still
    succeeds with the offline part)."""
    if provider is not None:
        lookups.register(provider.kind, provider)

    async def buyer(their_number: str, our_number: str) -> dict[str, str]:
        offline = await lookups.lookup("number", their_number, our_number)
        fields = dict(offline.data) if offline.ok else {}
        if provider is None:
            return fields
        try:
            remote = await provider(their_number, our_number)
        except LookupFailed as exc:
            fields["caller_name_error"] = str(exc)
            return fields
        for theirs, ours in (("name", "caller_name"), ("caller_type", "caller_type"),
                             ("line_type", "line_type"), ("carrier", "line_carrier")):
            if theirs in remote:
                fields[ours] = remote[theirs]
        return fields

    lookups.register("buyer", buyer)
