"""The Twilio-compatible HTTP gateway: REST calls out, webhooks in.

Outbound, each message is one ``POST /2010-04-01/Accounts/{sid}/Messages.json`` on a shared
httpx client, carrying a status-callback URL that names our outbox row. What can go wrong, and
what the gateway makes of it:

- the number's send slot is not free (``rate_per_number``, ``rate``): the message is handed back
  to the sender's queue with a reserved time (`SendSlots`);
- the provider throttles (HTTP 429, error 20429) or fails (5xx), or the connection cannot be
  made: the message was not created, so it is tried again with exponential backoff;
- the request was sent but the answer is lost (timeout, connection dropped): the message may
  exist, so the gateway looks for it (the status callbacks seen so far, then the provider's
  message list filtered by sender and recipient) and only sends again when it is sure the
  provider never created it; if it cannot tell, the row is marked 'unknown', never resent, and
  a later status callback still settles it;
- error 21610 (the recipient opted out at the carrier): the number is recorded as opted out.

Inbound messages and status callbacks arrive as signed webhooks (`webhooks.py`); on start the
gateway can list recent inbound messages to catch up on webhooks missed while it was down.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import trio

from ...errors import GatewayOutcomeUnknown, GatewayRefused, GatewayRetryLater, StoreUnavailable
from ...foundation.backoff import backoff, parse_retry_after
from ...foundation.caching import BoundedDict
from ...foundation.metrics import Metrics
from ...foundation.phone import mask
from ..base import Endpoint, Gateway, InboundMessage, OutboundMessage, Reconciled, Sink
from ..sendrate import SendRate
from ..slots import SendSlots
from .webhooks import webhook_endpoints

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
OPTED_OUT_AT_CARRIER = 21610
TOO_MANY_REQUESTS = 20429
LOOKUP_SETTLE_MAX = 15.0
"""Longest wait before looking up a message whose answer was lost (seconds)."""
THROTTLE_RETRY = (0.2, 0.8)
"""Seconds (uniform) before a throttled message is tried again, without a Retry-After."""
REMEMBERED_IDS = 100_000
"""Provider message ids kept in memory to match callbacks and reconciliations (the newest)."""


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    api_url: str = "https://api.twilio.com"
    """The REST API's base URL."""
    public_url: str = ""
    """Our base URL as the provider reaches it; empty: the HTTP server's own address."""
    rate_per_number: float = 1.0
    rate: float = 0.0
    """Most messages per second overall; 0: no limit of our own."""
    connections: int = 20
    http2: bool = True
    request_timeout: float = 15.0
    catch_up: float = 0.0
    """Seconds of recent inbound messages to list on start; 0: off."""
    numbers: tuple[str, ...] = ()
    """Our numbers (catch-up lists the messages sent to each)."""
    number_rates: dict[str, float] = field(default_factory=dict)
    """A number's own contracted rate (``[[numbers]] rate``), instead of `rate_per_number`."""
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    clock_skew: float = 5.0
    """Allowance between our clock and the provider's when matching a lost submit."""


class TwilioGateway(Gateway):
    name = "twilio"

    def __init__(self, settings: TwilioSettings, *, metrics: Metrics | None = None,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._own_metrics = metrics is None
        self.max_in_flight = settings.connections
        self.slots = SendSlots(per_number=settings.rate_per_number, overall=settings.rate,
                               rates=settings.number_rates)
        self.public_url = settings.public_url.rstrip("/")
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._sink: Sink | None = None
        self._ready = trio.Event()
        self._stopped = False
        self._failures = 0
        self._rates: dict[str, SendRate] = {}
        """Per sending number: its limit, lowered when 429s persist (`SendRate`)."""
        self._random = random.Random()
        self._base = f"/{API_VERSION}/Accounts/{quote(settings.account_sid, safe='')}"
        self._sids_by_outbox: BoundedDict[str, str] = BoundedDict(REMEMBERED_IDS)
        """Provider ids learnt from status callbacks and answers (bounded, newest last)."""
        self._claimed: BoundedDict[str, None] = BoundedDict(REMEMBERED_IDS)
        """Provider ids already matched to one of our rows: never match them to another."""

    # -- life cycle

    async def run(self, sink: Sink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        try:
            async with self._open_client() as client:
                self._client, self._sink = client, sink
                self._ready.set()
                task_status.started()
                if self.settings.catch_up > 0:
                    await self.catch_up(self.settings.catch_up)
                await trio.sleep_forever()
        finally:
            self._client, self._stopped = None, True

    def _open_client(self) -> httpx.AsyncClient:
        s = self.settings
        http2 = s.http2 and self._transport is None and _have_h2()
        limits = httpx.Limits(max_connections=s.connections,
                              max_keepalive_connections=s.connections)
        return httpx.AsyncClient(
            base_url=s.api_url.rstrip("/"), auth=(s.account_sid, s.auth_token),
            timeout=httpx.Timeout(s.request_timeout), limits=limits, http2=http2,
            transport=self._transport, follow_redirects=False,
            headers={"user-agent": "intercept-sms (+https://github.com/intercept-sms)"})

    def use_metrics(self, metrics: Metrics) -> None:
        if self._own_metrics:
            self.metrics, self._own_metrics = metrics, False
        metrics.watch_memory("provider_sids", self._sids_by_outbox.__len__,
                             self._sids_by_outbox.maxsize)
        metrics.watch_memory("provider_callbacks", self._claimed.__len__, self._claimed.maxsize)

    def listening(self, addresses: list[str]) -> None:
        if not self.public_url and addresses:
            self.public_url = addresses[0].rstrip("/")
            log.warning("gateway.public_url is not set: status callbacks point at %s, which a "
                        "provider on the internet cannot reach", self.public_url)

    async def _client_ready(self) -> httpx.AsyncClient:
        if self._client is None and not self._stopped:
            await self._ready.wait()
        if self._client is None:  # stopped: intake ends before the last replies are sent
            raise GatewayRetryLater("the gateway is stopping", retry_after=1.0)
        return self._client

    # -- outbound

    def status_callback_url(self, outbox_id: str) -> str:
        return f"{self.public_url}/webhooks/twilio/status?{urlencode({'outbox': outbox_id})}"

    async def submit(self, message: OutboundMessage) -> str:
        wait = self.slots.claim(message.outbox_id, message.our_number, trio.current_time())
        if wait > 0:
            raise GatewayRetryLater(f"send slot of {mask(message.our_number)} in {wait:.2f}s",
                                    retry_after=wait)
        client = await self._client_ready()
        form = [("To", message.their_number), ("From", message.our_number),
                ("Body", message.text)]
        if self.public_url:
            form.append(("StatusCallback", self.status_callback_url(message.outbox_id)))
        since = time.time()
        started = trio.current_time()
        try:
            response = await client.post(f"{self._base}/Messages.json", data=dict(form))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # the request never reached the provider
            self._count("send", "retry", started)
            raise GatewayRetryLater(f"cannot reach the provider: {_describe(exc)}",
                                    retry_after=self._backoff()) from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            self._count("send", "lost", started)
            return await self._after_lost_answer(message, since, exc)
        self._count("send", _result_of(response.status_code), started)
        return await self._answer(message, response)

    async def _answer(self, message: OutboundMessage, response: httpx.Response) -> str:
        status = response.status_code
        payload = _json(response)
        if status in (200, 201) and isinstance(payload.get("sid"), str):
            self._failures = 0
            self._accepted(message.our_number)
            self._claim(message.outbox_id, payload["sid"])
            return str(payload["sid"])
        code = payload.get("code")
        text = payload.get("message") or response.reason_phrase
        if status == 429 or code == TOO_MANY_REQUESTS:
            self._throttled(message.our_number)
            # sporadic or not, this message is tried again soon, after a jittered wait
            raise GatewayRetryLater(f"the provider throttles (HTTP {status})",
                                    retry_after=_retry_after(response)
                                    or random.uniform(*THROTTLE_RETRY))
        if status >= 500:
            raise GatewayRetryLater(f"the provider failed (HTTP {status}: {text})",
                                    retry_after=self._backoff())
        if status in (401, 403):
            log.error("the provider refused our credentials (HTTP %d: %s): check gateway.url's "
                      "account SID and the auth token; messages wait and are tried again",
                      status, text)
            raise GatewayRetryLater(f"credentials refused (HTTP {status})",
                                    retry_after=self.settings.backoff_max)
        if code == OPTED_OUT_AT_CARRIER:
            assert self._sink is not None
            await self._sink.carrier_opt_out(message.their_number)
            raise GatewayRefused("the recipient opted out at the carrier (error 21610)")
        raise GatewayRefused(f"the provider refused the message: HTTP {status}"
                           f"{f', error {code}' if code else ''}: {text}")

    async def _after_lost_answer(self, message: OutboundMessage, since: float,
                                 exc: Exception) -> str:
        """The request went out but its answer did not come back: find out, never guess.

        After a timeout the provider may still be working on it (a request stuck in its queue
        past our timeout): the lookup waits as long again first, so that a message it is about
        to create is found rather than sent a second time. A dropped connection is looked up at
        once: the provider is not working on it any more.
        """
        if isinstance(exc, httpx.TimeoutException):
            await trio.sleep(min(self.settings.request_timeout, LOOKUP_SETTLE_MAX))
        found = await self.reconcile(message, since=since)
        if found is None:
            raise GatewayOutcomeUnknown(
                f"no answer from the provider ({_describe(exc)}) and it cannot be checked")
        if found.sent:
            assert found.gateway_id is not None
            log.info("outbox row %s: the answer was lost (%s) but the provider has the "
                     "message; not sent again", message.outbox_id, _describe(exc))
            return found.gateway_id
        raise GatewayRetryLater(f"no answer from the provider ({_describe(exc)}) and it did not "
                                "create the message: sending again", retry_after=self._backoff())

    async def reconcile(self, message: OutboundMessage, *, since: float) -> Reconciled | None:
        """Look for `message` at the provider: by our outbox id in the status callbacks seen,
        else in its message list (same sender, recipient and text, created since `since`)."""
        known = self._sids_by_outbox.get(message.outbox_id)
        if known is not None:
            return Reconciled(sent=True, gateway_id=known)
        cutoff = since - self.settings.clock_skew
        query = {"To": message.their_number, "From": message.our_number, "PageSize": "50"}
        try:
            async for item in self._list(query, operation="reconcile"):
                created = _timestamp(item.get("date_created"))
                if created is not None and created < cutoff:
                    break
                sid = item.get("sid")
                if (item.get("body") == message.text and isinstance(sid, str)
                        and str(item.get("direction", "")).startswith("outbound")
                        and sid not in self._claimed):
                    self._claim(message.outbox_id, sid)
                    return Reconciled(sent=True, gateway_id=sid)
        except (httpx.HTTPError, _ListError) as exc:
            log.warning("cannot check whether outbox row %s went out: %s", message.outbox_id,
                        _describe(exc))
            return None
        return Reconciled(sent=False)

    def status_seen(self, outbox_id: str, sid: str) -> None:
        """A status callback tied provider id `sid` to our row `outbox_id`."""
        self._sids_by_outbox[outbox_id] = sid

    def _claim(self, outbox_id: str, sid: str) -> None:
        self.status_seen(outbox_id, sid)
        self._claimed[sid] = None

    def _rate_for(self, number: str) -> SendRate:
        rate = self._rates.get(number)
        if rate is None:
            configured = self.slots.rate_of(number)
            # a window long enough to see 30 answers at the number's rate (1/s: 30 s)
            window = max(1.0, 30.0 / configured) if configured else 1.0
            rate = self._rates[number] = SendRate(configured, window=window, persist=2,
                                                  recover_after=max(10.0, 3 * window))
        return rate

    def _accepted(self, number: str) -> None:
        rate = self._rate_for(number)
        before = rate.rate
        rate.accepted(trio.current_time())
        if rate.rate != before and rate.rate is not None:
            self.slots.set_rate(number, rate.rate)

    def _throttled(self, number: str) -> None:
        """A 429 for `number`: the number's limit comes down only when they persist."""
        rate = self._rate_for(number)
        if rate.throttled(trio.current_time()) and rate.rate is not None:
            self.slots.set_rate(number, rate.rate)
            log.warning("the provider keeps throttling %s (429 on %.0f%% of its answers): "
                        "sending at most %.2g messages/s from it now", mask(number),
                        rate.share * 100, rate.rate)

    def _backoff(self) -> float:
        s = self.settings
        delay = backoff(self._failures, base=s.backoff_min, cap=s.backoff_max,
                        jitter=(0.8, 1.2), max_exponent=16, rng=self._random)
        self._failures += 1
        return delay

    def _count(self, operation: str, result: str, started: float) -> None:
        self.metrics.provider_requests.labels(operation, result).inc()
        self.metrics.provider_seconds.observe(trio.current_time() - started)

    # -- listing (reconciliation and catch-up)

    async def _list(self, query: dict[str, str], *, operation: str, max_pages: int = 20
                    ) -> AsyncIterator[dict[str, Any]]:
        """Messages of the provider's list, newest first, following `next_page_uri`."""
        client = await self._client_ready()
        url: str | None = f"{self._base}/Messages.json"
        params: dict[str, str] | None = query
        for _ in range(max_pages):
            if url is None:
                return
            started = trio.current_time()
            response = await client.get(url, params=params)
            self._count(operation, _result_of(response.status_code), started)
            if response.status_code != 200:
                raise _ListError(f"listing messages answered HTTP {response.status_code}")
            payload = _json(response)
            for item in payload.get("messages") or ():
                if isinstance(item, dict):
                    yield item
            url, params = _next_page(payload.get("next_page_uri")), None

    async def catch_up(self, period: float) -> int:
        """Commit the inbound messages of the last `period` seconds that webhooks did not
        bring (duplicates are dropped by message id, like webhooks). Returns how many were new.
        """
        assert self._sink is not None
        cutoff = time.time() - period
        found: list[tuple[float, InboundMessage]] = []
        for number in self.settings.numbers:
            try:
                async for item in self._list({"To": number, "PageSize": "100"},
                                             operation="catch_up"):
                    created = _timestamp(item.get("date_sent") or item.get("date_created"))
                    if created is not None and created < cutoff:
                        break
                    if item.get("direction") == "inbound":
                        found.append((created or 0.0, await self._inbound_from_list(item)))
            except (httpx.HTTPError, _ListError) as exc:
                log.warning("catch-up for %s stopped: %s (webhooks still arrive)", mask(number),
                            _describe(exc))
        if not found:
            log.info("catch-up: no inbound messages in the last %.0f s", period)
            return 0
        found.sort(key=lambda pair: pair[0])  # oldest first: a conversation's order
        try:
            results = await self._sink.inbound_many([message for _, message in found])
        except StoreUnavailable as exc:
            log.warning("catch-up: %d inbound messages listed but not committed: %s (the "
                        "provider keeps them: a restart within gateway.catch_up lists them "
                        "again)", len(found), exc)
            return 0
        fresh = sum(not r.duplicate for r in results)
        log.info("catch-up: %d inbound messages listed, %d were missed and are now processed",
                 len(found), fresh)
        return fresh

    async def _inbound_from_list(self, item: dict[str, Any]) -> InboundMessage:
        media: tuple[str, ...] = ()
        if _int(item.get("num_media")) > 0:
            media = await self._media_urls(str(item["sid"]))
        return InboundMessage(gateway_id=str(item["sid"]), our_number=str(item.get("to", "")),
                              their_number=str(item.get("from", "")),
                              text=str(item.get("body") or ""), media=media)

    async def _media_urls(self, sid: str) -> tuple[str, ...]:
        client = await self._client_ready()
        started = trio.current_time()
        response = await client.get(f"{self._base}/Messages/{quote(sid, safe='')}/Media.json")
        self._count("media_list", _result_of(response.status_code), started)
        if response.status_code != 200:
            log.warning("catch-up: the media of message %s could not be listed (HTTP %d)", sid,
                        response.status_code)
            return ()
        base = self.settings.api_url.rstrip("/")
        return tuple(base + str(m["uri"]).removesuffix(".json")
                     for m in _json(response).get("media_list") or () if m.get("uri"))

    # -- what the rest of the server asks of us

    def media_credentials(self) -> dict[str, tuple[str, str]]:
        """HTTP Basic credentials for media URLs on the provider's own host (only there)."""
        host = urlsplit(self.settings.api_url).hostname or ""
        return {host: (self.settings.account_sid, self.settings.auth_token)} if host else {}

    def endpoints(self) -> list[Endpoint]:
        return webhook_endpoints(self, auth_token=self.settings.auth_token)

    @property
    def sink(self) -> Sink:
        if self._sink is None:
            raise RuntimeError("the gateway is not running yet")
        return self._sink


class _ListError(Exception):
    pass


def _have_h2() -> bool:
    try:
        import h2  # noqa: F401
    except ImportError:
        return False
    return True


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _result_of(status: int) -> str:
    if status < 300:
        return "ok"
    if status == 429:
        return "throttled"
    return "server_error" if status >= 500 else "refused"


def _retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _next_page(uri: object) -> str | None:
    return uri if isinstance(uri, str) and uri else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

