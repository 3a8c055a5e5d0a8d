"""Hand-off alerts that reach a person, and the queue's metrics.

Every `[handoffs] interval` the queue is read through the writer (`TakeSnapshot`): the open
hand-offs by priority, the oldest one no advocate has answered, the new ones not yet alerted
and the first replies since the last look. Metrics follow
(`intercept_handoffs_open{priority}`, `intercept_handoff_oldest_wait_seconds`,
`intercept_handoff_first_reply_seconds`). New hand-offs are alerted together: at the next look
when one is urgent or the last alert is older than `coalesce`, else when that window ends.

An alert goes to the on-call advocate's phone as an SMS through the sender (outbox kind
`alert`, from one of our numbers; not stored, it belongs to no conversation) and/or as a JSON
POST to a webhook, signed with HMAC-SHA256 and tried again with backoff
(`intercept_handoff_alerts_total{channel,result}`). **An alert holds counts and waits only:
never a message, a name or the person's number.**
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import msgspec
import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..config import Config, read_secret
from ..engine.durations import format_age
from ..foundation.backoff import backoff, parse_retry_after
from ..foundation.phone import mask, to_e164
from ..store.handoff_rows import PRIORITIES
from ..store.handoffs import MarkAlerted, QueueSnapshot, TakeSnapshot
from ..store.ops import OutboxRow
from ..store.writer import Store

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Intercept-Signature"
_FIRST_REPLY_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)


class AlertSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`[handoffs]` with durations in seconds, the secret read and the sender chosen."""

    interval: float = 30.0
    coalesce: float = 300.0
    oncall_number: str = ""
    oncall_from: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_timeout: float = 10.0
    webhook_attempts: int = 4

    @classmethod
    def from_config(cls, config: Config) -> AlertSettings:
        h = config.handoffs
        sender = to_e164(h.oncall_from) if h.oncall_from else next(
            (n.number for n in config.numbers if n.kind == "outreach"),
            config.numbers[0].number if config.numbers else "")
        secret = read_secret(h.webhook_secret, h.webhook_secret_file,
                             key="handoffs.webhook_secret", source=config.source or "<config>",
                             base_dir=config.base_dir) if h.webhook_url else ""
        return cls(interval=float(h.interval), coalesce=float(h.coalesce),
                   oncall_number=to_e164(h.oncall_number) or "" if h.oncall_number else "",
                   oncall_from=sender or "", webhook_url=h.webhook_url, webhook_secret=secret,
                   webhook_timeout=float(h.webhook_timeout),
                   webhook_attempts=h.webhook_attempts)

    @property
    def alerting(self) -> bool:
        return bool((self.oncall_number and self.oncall_from) or self.webhook_url)


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """What an alert says: counts and waits, nothing about anyone."""

    event: str = "handoffs"
    new: int
    """Hand-offs opened (or raised to urgent) since the last alert."""
    new_urgent: int
    open: int
    open_urgent: int
    oldest_wait_seconds: int
    """How long the longest-waiting unanswered hand-off has waited."""
    handoff_ids: list[int]
    """The new ones (ids of the `handoffs` table: the console and API name them)."""
    at: str
    """When (ISO 8601, UTC)."""

    def text(self) -> str:
        """The SMS: one segment, plain GSM characters."""
        urgent = f", {self.new_urgent} URGENT" if self.new_urgent else ""
        plural = "" if self.new == 1 else "s"
        return (f"Intercept: {self.new} new hand-off{plural}{urgent}. {self.open} open, oldest "
                f"waiting {format_age(self.oldest_wait_seconds)}. See the advocates' inbox.")


_encode = msgspec.json.Encoder().encode


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body`: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()



class HandoffAlerts:
    """See the module docstring. `check()` once; `run()` every `settings.interval`."""

    def __init__(self, *, store: Store, settings: AlertSettings, clock: Callable[[], float],
                 registry: CollectorRegistry,
                 send_sms: Callable[[list[OutboxRow]], None] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 rng: random.Random | None = None):
        self.store, self.settings, self.clock = store, settings, clock
        self.send_sms = send_sms
        self.transport = transport
        self.rng = rng or random.Random()
        self.last_alert_at: float | None = None
        self.replies_since: float | None = None
        self.sent: list[Alert] = []
        """Alerts made since start (the last 100), for tests and the console."""
        self._nursery: trio.Nursery | None = None
        self._client: httpx.AsyncClient | None = None
        self._open = Gauge("intercept_handoffs_open", "Open hand-offs, by priority",
                           ["priority"], registry=registry)
        for priority in PRIORITIES:
            self._open.labels(priority=priority).set(0)
        self._oldest = Gauge("intercept_handoff_oldest_wait_seconds",
                             "How long the longest-waiting hand-off no advocate has answered "
                             "has waited (0: none)", registry=registry)
        self._first_reply = Histogram(
            "intercept_handoff_first_reply_seconds", "From a scenario's hand-off to an "
            "advocate's first message", buckets=_FIRST_REPLY_BUCKETS, registry=registry)
        self._alerts = Counter("intercept_handoff_alerts", "Hand-off alerts, by channel (sms, "
                               "webhook) and result (queued, sent, failed)",
                               ["channel", "result"], registry=registry)

    async def check(self) -> Alert | None:
        """Read the queue, update the metrics, alert when due; the alert made, if any."""
        now = self.clock()
        if self.replies_since is None:
            self.replies_since = now  # first replies before this start were counted before
        snap: QueueSnapshot = await self.store.call(TakeSnapshot(since=self.replies_since))
        for priority in PRIORITIES:
            self._open.labels(priority=priority).set(snap.open_by_priority.get(priority, 0))
        waiting = 0 if snap.oldest_waiting_since is None else max(
            0, int(now - snap.oldest_waiting_since))
        self._oldest.set(waiting)
        for opened, replied in snap.first_replies:
            self._first_reply.observe(max(0.0, replied - opened))
            self.replies_since = max(self.replies_since, replied)
        if not snap.unalerted or not self.settings.alerting:
            return None
        urgent = sum(1 for _, p in snap.unalerted if p == "urgent")
        quiet = (self.last_alert_at is None
                 or now - self.last_alert_at >= self.settings.coalesce)
        if not urgent and not quiet:
            return None
        alert = Alert(new=len(snap.unalerted), new_urgent=urgent,
                      open=sum(snap.open_by_priority.values()),
                      open_urgent=snap.open_by_priority.get("urgent", 0),
                      oldest_wait_seconds=waiting, handoff_ids=[i for i, _ in snap.unalerted],
                      at=datetime.fromtimestamp(now, UTC).isoformat())
        await self.store.call(MarkAlerted(alert.handoff_ids, now=now))
        self.last_alert_at = now
        self.sent = [*self.sent[-99:], alert]
        log.info("hand-off alert: %d new (%d urgent), %d open", alert.new, urgent, alert.open)
        self._text(alert, now)
        if self.settings.webhook_url:
            if self._nursery is None:
                await self._post(alert)
            else:
                self._nursery.start_soon(self._post, alert)
        return alert

    def _text(self, alert: Alert, now: float) -> None:
        s = self.settings
        if not (s.oncall_number and s.oncall_from):
            return
        if self.send_sms is None:
            self._alerts.labels(channel="sms", result="failed").inc()
            return
        row = OutboxRow(id=f"alert.{int(now * 1000)}", conversation_id=-1, position=0,
                        our_number=s.oncall_from, their_number=s.oncall_number,
                        body=alert.text(), not_before=now, kind="alert")
        self.send_sms([row])
        self._alerts.labels(channel="sms", result="queued").inc()

    async def _post(self, alert: Alert) -> bool:
        """POST the alert, tried `webhook_attempts` times with backoff; True when accepted."""
        s = self.settings
        body = _encode(alert)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(s.webhook_secret,
                                                                              body)}
        client = self._client or httpx.AsyncClient(transport=self.transport,
                                                   timeout=s.webhook_timeout)
        self._client = client
        for attempt in range(s.webhook_attempts):
            wait = None
            try:
                response = await client.post(s.webhook_url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}"
            else:
                if response.status_code < 300:
                    self._alerts.labels(channel="webhook", result="sent").inc()
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in (408, 429):
                    break  # refused for good: trying again would not help
                wait = parse_retry_after(response.headers.get("retry-after"), cap=600)
            if attempt + 1 < s.webhook_attempts:
                await trio.sleep(wait if wait is not None else backoff(
                    attempt, base=1.0, cap=60.0, rng=self.rng))
        log.warning("hand-off alert webhook failed after %d tries (%s); the alert is lost, "
                    "the queue still holds the hand-offs", attempt + 1, problem)
        self._alerts.labels(channel="webhook", result="failed").inc()
        return False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        if self.settings.oncall_number:
            log.info("hand-off alerts text %s", mask(self.settings.oncall_number))
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.check()
                task_status.started()
                while True:
                    await trio.sleep(self.settings.interval)
                    await self.check()
        finally:
            self._nursery = None
            if self._client is not None:
                with trio.CancelScope(shield=True):
                    await self._client.aclose()
