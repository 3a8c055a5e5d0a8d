"""`SmppGateway`: every conversation over one SMPP 3.4 bind_transceiver, on trio.

One connection at a time carries everything. The protocol (states, sequence numbers, response
matching, the window, answers to enquire_link, unbind and malformed PDUs, timeouts) is the
sans-IO `Session` (session.py); this module is its trio driver: the socket, the timers, the
sink (the store) and the metrics. Per connection (a `_Link`, holding its `Session`), in one
nursery:

- the **writer** takes every frame queued since its last write and sends them in one
  ``send_all`` (submits, responses and keep-alives coalesce under load);
- the **reader** hands what the socket gives to the session, settles the responses to our
  requests at once, writes what the session answered by itself and hands each burst of
  deliver_sm/data_sm to the inbound task (a `RemoteProtocolError` drops the link);
- the **inbound** task decodes and reassembles messages, commits them with
  `Sink.inbound_many()` and records receipts with `Sink.receipts()`, and only then sends the
  deliver_sm_resps;
- the **timer** expires requests that got no answer in `submit_timeout` and sends an
  enquire_link when nothing has been received for `enquire_link_interval`.

A link that fails (connection lost, no answer to a bind or enquire_link, a fatal PDU, unbind)
is closed: every request still waiting for its response raises `GatewayRetryLater`, and `run()`
reconnects after an exponential backoff with jitter, rebinds and carries on.

Outbound durability (docs/smpp.md): a submit_sm that got a response is settled by it and never
resent; one that did not (the link dropped, or `submit_timeout` passed with the default
``on_submit_timeout="retry"``) is retried after the reconnect. The SMSC may have accepted it
and lost only the response, so that edge is at-least-once. With ``on_submit_timeout="unknown"``
a timed-out submit raises `GatewayOutcomeUnknown` instead (never resent: at-most-once).

Throttling (ESME_RTHROTTLED, ESME_RMSGQFUL): the message is tried again after a short jittered
wait; the send rate (`SendRate`) is lowered only when throttles persist in proportion to the
rate sent (a rate limit), not for sporadic refusals. `rate` caps submits per second. `window`
bounds the requests in flight and is the gateway's `max_in_flight`; a submit waiting for a rate
token does not hold a window slot.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
import trio
from prometheus_client import CollectorRegistry

from ...errors import (
    GatewayOutcomeUnknown,
    GatewayProtocolError,
    GatewayRefused,
    GatewayRetryLater,
    RemoteProtocolError,
    StoreUnavailable,
)
from ...foundation.backoff import backoff
from ...foundation.caching import BoundedDict
from ...foundation.metrics import Metrics
from ...foundation.phone import mask
from ..base import DeliveryReceipt, Gateway, InboundMessage, OutboundMessage, Sink
from ..sendrate import SendRate
from ..slots import SendSlots
from .codec import (
    BindTransceiver,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    GenericNack,
    MessageState,
    Pdu,
    SubmitSm,
    Unbind,
)
from .concat import Duplicate, Reassembled, Reassembler
from .encoding import DefaultAlphabet, Part, SplitMode, decode_sm, split
from .inbound import MoIds, from_address, mo_key, to_address
from .message_ids import IdForms, receipt_key, submit_key
from .metrics import SmppMetrics, status_name
from .receipt import Receipt, is_receipt, receipt_from_pdu
from .session import Answered, Closed, Malformed, Received, Session, State, Stray

log = logging.getLogger(__name__)

Connector = Callable[[], Awaitable[trio.abc.Stream]]
OnTimeout = Literal["retry", "unknown"]

DEFAULT_WINDOW = 100
"""Requests in flight on the bind; see docs/smpp.md for the measurement behind it."""

_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
_THROTTLED = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})
THROTTLE_RETRY = (0.2, 0.8)
"""Seconds (uniform) before a throttled message is tried again."""
_TEMPORARY = frozenset({CommandStatus.ESME_RSYSERR, CommandStatus.ESME_RX_T_APPN})
_AUTH = frozenset({CommandStatus.ESME_RINVPASWD, CommandStatus.ESME_RINVSYSID,
                   CommandStatus.ESME_RINVSYSTYP, CommandStatus.ESME_RBINDFAIL})
REMEMBERED_PLANS = 100_000
"""Long messages partly accepted, remembered so that a retry sends only their missing parts."""
_MAX_QUEUED_FRAMES = 200_000
"""A writer this far behind means the connection is stuck: drop it."""
_FAILED_STATES = frozenset({"expired", "deleted", "undeliverable", "rejected"})


class LinkDown(Exception):
    """The connection to the SMSC is unusable (the reason is a sentence)."""


class BindRefused(LinkDown):
    """The SMSC answered the bind with an error status."""

    def __init__(self, status: int):
        self.status = status
        super().__init__(f"the SMSC refused the bind with {status_name(status)}"
                         + (" (check gateway.url's system id and the password)"
                            if status in _AUTH else ""))


_LINK_ERRORS = (LinkDown, GatewayProtocolError, *_NETWORK_ERRORS)
"""What takes one link down (never the gateway): the link closes and `run()` reconnects."""


class SmppSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything `SmppGateway` needs; `gateway_from_config` builds it from ``[gateway]``."""

    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    window: int = DEFAULT_WINDOW
    rate: float | None = None
    """Most submit_sm per second; None: no limit (until the SMSC throttles)."""
    source_ton: int = 1
    source_npi: int = 1
    dest_ton: int = 1
    dest_npi: int = 1
    registered_delivery: int = 1
    split: SplitMode = "udh"
    enquire_link_interval: float = 30.0
    submit_timeout: float = 30.0
    """Also bounds the wait for bind_transceiver_resp and enquire_link_resp."""
    on_submit_timeout: OnTimeout = "retry"
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    reassembly_timeout: float = 60.0
    dedupe_window: float = 600.0
    default_alphabet: DefaultAlphabet = "gsm7"
    number_rates: dict[str, float] = msgspec.field(default_factory=dict)
    """Our numbers' contracted rates (``[[numbers]] rate``): most submits per second each."""
    receipt_ids: IdForms = "same"
    """How the SMSC writes message ids in responses and receipts (see `message_ids`)."""


class _Waiter:
    """The driver's side of one request (a `Request`'s token): woken with its response."""

    __slots__ = ("done", "response", "timed_out")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.response: Pdu | None = None
        self.timed_out = False


class _Link:
    """One connection: its stream, session, outgoing frames and the tasks waiting on them."""

    def __init__(self, number: int, stream: trio.abc.Stream, session: Session):
        self.number = number
        self.stream = stream
        self.session = session
        self.out: list[bytes] = []
        self.out_ready = trio.Event()
        self.window = trio.Semaphore(session.window)
        """Submits wait here for a slot of the session's window."""
        self.waiting: set[trio.CancelScope] = set()
        self.scope = trio.CancelScope()
        self.reason: str | None = None
        self.error: BaseException | None = None
        self.bound = False
        self.bound_once = False
        self.closing: str | None = None
        self.torn = False
        self.inbound_send, self.inbound_receive = trio.open_memory_channel[list[Pdu]](256)
        self.on_close: Callable[[], None] | None = None

    def write(self, frame: bytes) -> None:
        out = self.out
        out.append(frame)
        if len(out) > _MAX_QUEUED_FRAMES:
            self.close(f"{len(out)} frames are waiting to be written; the connection is stuck")
        self.out_ready.set()

    def close(self, reason: str, error: BaseException | None = None) -> None:
        """Take the link down (idempotent): wake every request and waiter, cancel its tasks."""
        if self.reason is not None:
            return
        self.reason = reason
        self.error = error
        self.bound = False
        self.scope.cancel()
        for scope in self.waiting:
            scope.cancel()
        for _ in range(self.window.statistics().tasks_waiting):
            self.window.release()  # the waiters see `reason` and give up
        for request in self.session.close():
            request.token.done.set()  # response None: the link went down before the answer
        if self.on_close is not None:
            self.on_close()


class _Outcome:
    """How one part's submit ended."""

    __slots__ = ("kind", "message_id", "reason", "retry_after")

    def __init__(self, kind: Literal["ok", "retry", "unknown", "failed"], *,
                 message_id: str = "", reason: str = "", retry_after: float = 1.0):
        self.kind = kind
        self.message_id = message_id
        self.reason = reason
        self.retry_after = retry_after


class _Plan:
    """A message's parts and which of them the SMSC has accepted (kept across a retry)."""

    __slots__ = ("ids", "parts", "template")

    def __init__(self, template: SubmitSm, parts: list[Part]):
        self.template = template
        self.parts = parts
        self.ids: list[str | None] = [None] * len(parts)


class SmppGateway(Gateway):
    """An SMPP 3.4 ESME: one bind_transceiver to the SMSC for all traffic.

    `connect` replaces the TCP connection (tests pass in-memory streams); `registry` is the
    Prometheus registry for the client's metrics (without one, the metrics join the sink's
    ``metrics.registry`` when `run()` starts, if it has one). `wall_clock` is read only to
    derive MO gateway ids.
    """

    name = "smpp"

    def __init__(self, settings: SmppSettings | None = None, *, connect: Connector | None = None,
                 registry: CollectorRegistry | None = None,
                 wall_clock: Callable[[], float] = time.time, **options: object):
        if settings is None:
            settings = msgspec.convert(options, SmppSettings)
        elif options:
            settings = msgspec.structs.replace(settings, **options)
        if settings.window < 1:
            raise ValueError(f"window is {settings.window}; it must be at least 1.")
        self.settings = settings
        self.max_in_flight = settings.window
        self._connect = connect or self._open_tcp
        self._wall = wall_clock
        self.metrics = SmppMetrics(registry)
        self.metrics.window_size.set(settings.window)
        self.metrics.window_function(self._window_in_use)
        self._rate = SendRate(settings.rate)
        self._slots = (SendSlots(per_number=None, rates=settings.number_rates)
                       if settings.number_rates else None)
        self._rate_lock = trio.Lock()
        self.metrics.send_rate.set(settings.rate or 0)
        self._reassembler = Reassembler(timeout=settings.reassembly_timeout,
                                        default_alphabet=settings.default_alphabet)
        self._mo_ids = MoIds(settings.dedupe_window)
        self._link: _Link | None = None
        self._links = 0
        self._ref = random.randrange(256)
        self._plans: BoundedDict[str, _Plan] = BoundedDict(REMEMBERED_PLANS)
        self._maybe_sent: set[str] = set()
        """Messages whose submit was cancelled after a submit_sm was handed to the link."""
        self._next_attempt = 0.0
        self._tick = max(0.05, min(1.0, settings.submit_timeout / 4,
                                   settings.enquire_link_interval / 4))
        self.bound = trio.Event()
        """Set while bound (a new Event after each disconnect)."""
        self.binds = 0

    # -- life cycle

    @property
    def is_bound(self) -> bool:
        return self._link is not None and self._link.bound

    def _window_in_use(self) -> float:
        link = self._link
        return 0 if link is None else link.session.in_flight

    async def _open_tcp(self) -> trio.abc.Stream:
        return await trio.open_tcp_stream(self.settings.host, self.settings.port)

    def _adopt_registry(self, sink: Sink) -> None:
        registry = getattr(getattr(sink, "metrics", None), "registry", None)
        if isinstance(registry, CollectorRegistry) and not self.metrics._registered:
            self.metrics.register(registry)

    async def run(self, sink: Sink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Connect and bind, call `task_status.started()` (once bound, or after the first
        attempt failed: the server then serves while this keeps retrying), then carry traffic
        and reconnect whenever the link drops, until cancelled.

        A first bind refused for bad credentials raises `GatewayRefused`.
        """
        self._adopt_registry(sink)
        s = self.settings
        failures = 0
        started = False
        ever_bound = False
        while True:
            link = None
            try:
                with trio.move_on_after(s.submit_timeout) as connecting:
                    stream = await self._connect()
                if connecting.cancelled_caught:
                    raise LinkDown(f"no connection within {s.submit_timeout:g}s")
            except (LinkDown, *_NETWORK_ERRORS) as exc:
                reason = _describe(exc)
            else:
                self._links += 1
                session = Session(window=s.window, timeout=s.submit_timeout,
                                  enquire_link_interval=s.enquire_link_interval,
                                  now=trio.current_time(), counts=self.metrics.pdu_counts)
                link = _Link(self._links, stream, session)
                link.on_close = self._link_closed
                try:
                    await self._serve_link(link, sink, task_status if not started else None)
                finally:
                    self._link_closed()
                    with trio.CancelScope(shield=True):
                        if link.reason is None:  # cancelled from outside: say goodbye
                            await self._unbind(link)
                            link.close("the gateway is stopping")
                        await trio.aclose_forcefully(stream)
                if link.bound_once:
                    started = ever_bound = True
                    failures = 0
                reason = link.reason or "the connection ended"
                if isinstance(link.error, BindRefused) and not ever_bound and (
                        link.error.status in _AUTH):
                    raise GatewayRefused(f"SMPP bind to {s.host}:{s.port} as {s.system_id!r} "
                                       f"refused: {link.error}.") from None
            self.metrics.reconnects.inc()
            # between half and all of min(reconnect_max, reconnect_min * 2**failures)
            delay = backoff(failures, base=s.reconnect_min, cap=s.reconnect_max, jitter=(0.5, 1.0))
            failures += 1
            log.warning("SMPP link to %s:%d down: %s; reconnecting in %.1fs", s.host, s.port,
                        reason, delay)
            if not started:
                started = True
                task_status.started()
            self._next_attempt = trio.current_time() + delay
            await trio.sleep(delay)

    def _link_closed(self) -> None:
        self._link = None
        if self.bound.is_set():
            self.bound = trio.Event()
        self.metrics.bound.set(0)

    async def _serve_link(self, link: _Link, sink: Sink,
                          task_status: trio.TaskStatus[None] | None) -> None:
        with link.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guard, link, self._writer(link))
                nursery.start_soon(self._guard, link, self._reader(link))
                nursery.start_soon(self._guard, link, self._timer(link))
                await self._guard(link, self._bind(link))
                if link.reason is not None:
                    return
                link.bound = True
                link.bound_once = True
                self._link = link
                self.binds += 1
                self.metrics.bound.set(1)
                self.bound.set()
                s = self.settings
                log.info("SMPP bound to %s:%d as %s (window %d%s)", s.host, s.port, s.system_id,
                         s.window, f", at most {s.rate:g}/s" if s.rate else "")
                nursery.start_soon(self._guard, link, self._inbound(link, sink))
                if task_status is not None:
                    task_status.started()

    async def _guard(self, link: _Link, work: Awaitable[None]) -> None:
        """Run one of the link's tasks; a network failure takes the link down, not the gateway."""
        try:
            await work
        except _LINK_ERRORS as exc:
            link.close(_describe(exc), exc)

    async def _bind(self, link: _Link) -> None:
        s = self.settings
        request = self._send_request(link, BindTransceiver(
            sequence=link.session.next_sequence(), system_id=s.system_id, password=s.password,
            system_type=s.system_type))
        await request.done.wait()
        response = request.response
        if response is None:
            raise LinkDown(link.reason or "no answer to bind_transceiver")
        if response.status != CommandStatus.ESME_ROK:
            raise BindRefused(response.status)
        if link.session.state is not State.BOUND:
            raise LinkDown(f"the SMSC answered bind_transceiver with a {response.command_name}")

    async def _unbind(self, link: _Link) -> None:
        """Say unbind and read until unbind_resp (settling late responses), within 2 seconds."""
        session = link.session
        if link.torn or not link.bound_once or session.state is not State.BOUND:
            return  # a write cut in the middle leaves a stream that cannot carry another PDU
        with trio.move_on_after(min(2.0, self.settings.submit_timeout)):
            try:
                unbind = session.send(Unbind(sequence=session.next_sequence()),
                                      now=trio.current_time(), token=_Waiter())
                await link.stream.send_all(b"".join([*link.out, unbind]))
                link.out = []
                while True:
                    data = await link.stream.receive_some(65536)
                    if not data:
                        return
                    now = trio.current_time()
                    session.receive_data(data, now)
                    while (event := session.next_event()) is not None:
                        if isinstance(event, Closed):
                            return
                        if isinstance(event, Answered):
                            if event.request.command_id == CommandId.UNBIND:
                                return
                            self._settle(link, event, now)  # submits still in flight
            except (GatewayProtocolError, *_NETWORK_ERRORS):
                return

    # -- the link's tasks

    async def _writer(self, link: _Link) -> None:
        stream = link.stream
        timeout = self.settings.submit_timeout
        while True:
            if not link.out:
                if link.closing is not None:
                    raise LinkDown(link.closing)
                link.out_ready = trio.Event()
                await link.out_ready.wait()
                continue
            frames = link.out
            link.out = []
            # Shielded: a cancelled send_all could leave half a PDU on the wire. A peer that
            # reads nothing for submit_timeout makes the write give up and the link go down.
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + timeout
                await stream.send_all(frames[0] if len(frames) == 1 else b"".join(frames))
            if scope.cancelled_caught:
                link.torn = True
                raise LinkDown(f"the SMSC read nothing for {timeout:g}s")

    def _close_after_flush(self, link: _Link, reason: str) -> None:
        link.closing = reason
        link.out_ready.set()

    def _send_request(self, link: _Link, pdu: Pdu) -> _Waiter:
        waiter = _Waiter()
        link.write(link.session.send(pdu, now=trio.current_time(), token=waiter))
        return waiter

    def _answer(self, link: _Link, pdu: Pdu) -> None:
        link.write(link.session.send(pdu, now=trio.current_time()))

    async def _reader(self, link: _Link) -> None:
        stream = link.stream
        session = link.session
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise LinkDown("the SMSC closed the connection")
            now = trio.current_time()
            session.receive_data(data, now)
            burst: list[Pdu] | None = None
            try:
                while (event := session.next_event()) is not None:
                    if isinstance(event, Answered):
                        self._settle(link, event, now)
                    elif isinstance(event, Received):
                        if burst is None:
                            burst = []
                        burst.append(event.pdu)
                    elif isinstance(event, Malformed):
                        log.warning("malformed PDU from the SMSC: %s", event.pdu.reason)
                    elif isinstance(event, Stray):
                        log.debug("a %s for sequence %d that nothing waits for",
                                  event.pdu.command_name, event.pdu.sequence)
                    elif isinstance(event, Closed):
                        link.bound = False
                        self._close_after_flush(link, event.reason)
                    # Replied: the session answered it (written below, with data_to_send)
            except RemoteProtocolError as exc:
                if link.closing is None:
                    self._close_after_flush(link, str(exc))
            replies = session.data_to_send()
            if replies:
                link.write(replies)
            if burst is not None:
                await link.inbound_send.send(burst)

    def _settle(self, link: _Link, event: Answered, now: float) -> None:
        request = event.request
        waiter: _Waiter = request.token
        if request.command_id == CommandId.SUBMIT_SM:
            link.window.release()
            self.metrics.submit_observe(now - request.sent_at)
        waiter.response = event.pdu
        waiter.done.set()

    async def _timer(self, link: _Link) -> None:
        """Expire unanswered requests; send enquire_link on an idle link."""
        s = self.settings
        session = link.session
        while True:
            await trio.sleep(self._tick)
            now = trio.current_time()
            if now < session.deadline():
                continue
            expired = session.expire(now)
            for index, request in enumerate(expired):
                waiter: _Waiter = request.token
                if request.command_id != CommandId.SUBMIT_SM:
                    reason = f"no answer to {request.name} within {s.submit_timeout:g}s"
                else:
                    self.metrics.submit_timeouts.inc()
                    if s.on_submit_timeout == "unknown":
                        link.window.release()
                        waiter.timed_out = True
                        waiter.done.set()
                        continue
                    reason = f"no submit_sm_resp within {s.submit_timeout:g}s"
                for rest in expired[index:]:  # woken without a response: tried again later
                    rest.token.done.set()
                raise LinkDown(reason)
            if session.enquire_link_due(now):
                # an answer clears it; no answer within submit_timeout drops the link
                self._send_request(link, EnquireLink(sequence=session.next_sequence()))

    async def _inbound(self, link: _Link, sink: Sink) -> None:
        receive = link.inbound_receive
        tick = min(5.0, self.settings.reassembly_timeout / 4)
        while True:
            pdus: list[Pdu] = []
            with trio.move_on_after(tick):
                pdus = await receive.receive()
                while True:
                    try:
                        pdus += receive.receive_nowait()
                    except trio.WouldBlock:
                        break
            await self._deliver(link, sink, pdus)

    async def _deliver(self, link: _Link, sink: Sink, pdus: list[Pdu]) -> None:
        """Commit a burst of deliver_sm/data_sm, then answer them.

        Receipts and redelivered copies are answered at once (a receipt is a best-effort
        write, docs/operations.md#disk-full): they share the SMSC's window with the texts,
        and waiting for the texts' commit would hold that window for nothing."""
        s = self.settings
        now = trio.current_time()
        wall = self._wall()
        messages: list[InboundMessage] = []
        seen: set[str] = set()
        receipts: list[DeliveryReceipt] = []
        answer: list[tuple[int, int, bool]] = []  # (link number, sequence, is data_sm)
        at_once: list[tuple[int, int, bool]] = []  # receipts and copies: nothing to commit
        results: list[Reassembled] = []  # the messages (their tokens: PDUs to answer)
        reassembler = self._reassembler
        alphabet = s.default_alphabet
        for pdu in pdus:
            assert isinstance(pdu, DeliverSm | DataSm)
            token = (link.number, pdu.sequence, type(pdu) is DataSm)
            if is_receipt(pdu):
                receipt = _read_receipt(pdu)
                if receipt is not None:
                    self.metrics.receipt(receipt.state)
                    mapped = _delivery_receipt(receipt, s.receipt_ids)
                    if mapped is not None:
                        receipts.append(mapped)
                at_once.append(token)
                continue
            source = from_address(pdu.source_addr, pdu.source_addr_ton)
            destination = from_address(pdu.destination_addr, pdu.dest_addr_ton)
            result = reassembler.add(source, destination, decode_sm(pdu, default_alphabet=alphabet),
                                     now, token=token)
            if result is None:
                continue  # a part: answered once the whole message is committed
            if isinstance(result, Duplicate):
                at_once.append(token)
                continue
            results.append(result)
            self._collect(result, messages, seen, answer, wall, now)
        for result in reassembler.expire(now):
            self.metrics.reassembly_incomplete.inc()
            log.warning("a concatenated message from %s lacks parts %s after %gs; delivering "
                        "what arrived", mask(result.source), result.missing,
                        s.reassembly_timeout)
            results.append(result)
            self._collect(result, messages, seen, answer, wall, now)
        if receipts:
            await sink.receipts(receipts)
        self._answer_tokens(link, at_once, set())
        refused: set[tuple[int, int, bool]] = set()
        if messages:
            try:
                await sink.inbound_many(messages)
            except StoreUnavailable as exc:
                # The disk is full: a temporary error makes the SMSC deliver them again later,
                # and the reassembler forgets them, so the parts come back as a new message.
                for result in results:
                    reassembler.forget(result)
                    refused.update(result.tokens)
                log.warning("refused %d inbound messages with ESME_RX_T_APPN (the SMSC "
                            "retries): %s", len(messages), exc)
        self._answer_tokens(link, answer, refused)

    def _answer_tokens(self, link: _Link, tokens: list[tuple[int, int, bool]],
                       refused: set[tuple[int, int, bool]]) -> None:
        """Answer deliver_sm/data_sm PDUs: ESME_ROK, or ESME_RX_T_APPN for those `refused`."""
        if link.reason is not None:
            return  # the connection is gone: the SMSC delivers them again on the next one
        number = link.number
        for token in tokens:
            link_number, sequence, is_data_sm = token
            if link_number == number:  # parts from an earlier link are redelivered anyway
                status = CommandStatus.ESME_RX_T_APPN if token in refused else 0
                self._answer(link, DataSmResp(sequence=sequence, status=status) if is_data_sm
                             else DeliverSmResp(sequence=sequence, status=status))

    def _collect(self, result: Reassembled, messages: list[InboundMessage], seen: set[str],
                 answer: list[tuple[int, int, bool]], wall: float, now: float) -> None:
        key = mo_key(result.source, result.destination, result.data_coding, result.text,
                     result.ref, result.total)
        gateway_id = self._mo_ids.id_for(key, wall=wall, now=now)
        answer.extend(result.tokens)
        if gateway_id in seen:
            return  # a copy in the same burst
        seen.add(gateway_id)
        messages.append(InboundMessage(gateway_id=gateway_id, our_number=result.destination,
                                       their_number=result.source, text=result.text))

    # -- submit

    def _next_ref(self) -> int:
        self._ref = (self._ref + 1) & (0xFF if self.settings.split == "udh" else 0xFFFF)
        return self._ref

    def _retry_after(self) -> float:
        return max(1.0, self._next_attempt - trio.current_time())

    async def submit(self, message: OutboundMessage) -> str:
        """Submit every part of `message`; return the SMSC's message_id of the first part.

        Raises `GatewayRetryLater` when not bound, throttled, on a temporary SMSC error or when
        the link dropped before the answer (parts already accepted are not sent again);
        `GatewayRefused` when the SMSC refused it for good; `GatewayOutcomeUnknown` when a part
        timed out and ``on_submit_timeout = "unknown"``.
        """
        link = self._link
        if link is None or not link.bound:
            raise GatewayRetryLater("not bound to the SMSC", retry_after=self._retry_after())
        s = self.settings
        if self._slots is not None and message.outbox_id not in self._plans:
            wait = self._slots.claim(message.outbox_id, message.our_number, trio.current_time())
            if wait > 0:  # back to the queue until its reserved time: it holds nothing
                raise GatewayRetryLater(f"{mask(message.our_number)} is at its contracted rate",
                                        retry_after=wait)
        plan = self._plans.pop(message.outbox_id, None)
        if plan is None:
            template = SubmitSm(
                sequence=0, source_addr_ton=s.source_ton, source_addr_npi=s.source_npi,
                source_addr=to_address(message.our_number), dest_addr_ton=s.dest_ton,
                dest_addr_npi=s.dest_npi, destination_addr=to_address(message.their_number),
                registered_delivery=s.registered_delivery)
            try:
                parts = split(message.text, ref=self._next_ref(), mode=s.split)
            except ValueError as exc:
                raise GatewayRefused(f"the message cannot be sent as SMS: {exc}") from None
            plan = _Plan(template, parts)
        requests: list[tuple[int, _Waiter | _Outcome]] = []
        written = any(plan.ids)
        try:
            for index, part in enumerate(plan.parts):
                if plan.ids[index] is None:
                    request = await self._send_part(link, plan.template, part)
                    written = written or isinstance(request, _Waiter)
                    requests.append((index, request))
            outcomes: list[tuple[int, _Outcome]] = []
            for index, request in requests:
                outcome = (request if isinstance(request, _Outcome)
                           else await self._outcome(request))
                if outcome.kind == "ok":
                    plan.ids[index] = outcome.message_id
                outcomes.append((index, outcome))
        except trio.Cancelled:
            if written:  # a submit_sm was handed to the link: it may have gone out
                self._maybe_sent.add(message.outbox_id)
            raise
        return self._conclude(message, plan, outcomes)

    def may_have_sent(self, outbox_id: str) -> bool:
        return outbox_id in self._maybe_sent

    def use_metrics(self, metrics: Metrics) -> None:
        metrics.watch_memory("smpp_mo_dedupe", self._mo_ids.__len__, self._mo_ids.max_entries)
        metrics.watch_memory("smpp_submit_plans", self._plans.__len__, self._plans.maxsize)

    def _conclude(self, message: OutboundMessage, plan: _Plan,
                  outcomes: list[tuple[int, _Outcome]]) -> str:
        total = len(plan.parts)
        for kind in ("failed", "unknown", "retry"):
            index, bad = next(((i, o) for i, o in outcomes if o.kind == kind), (0, None))
            if bad is None:
                continue
            where = f" (part {index + 1} of {total})" if total > 1 else ""
            if kind == "failed":
                raise GatewayRefused(bad.reason + where)
            if kind == "unknown":
                raise GatewayOutcomeUnknown(bad.reason + where)
            if any(plan.ids):
                self._plans[message.outbox_id] = plan  # send only the missing parts next time
            raise GatewayRetryLater(bad.reason + where, retry_after=bad.retry_after)
        first = plan.ids[0]
        assert first is not None
        return first

    async def _send_part(self, link: _Link, template: SubmitSm, part: Part
                         ) -> _Waiter | _Outcome:
        """Take a rate token, then a window slot, write the submit_sm; the request to wait on.

        The token comes first: a submit waiting for its turn under the rate never holds a
        window slot that an answer, an enquire_link or a submit already due could use.
        """
        rate = self._rate
        if rate.limited:
            with trio.CancelScope() as scope:
                link.waiting.add(scope)
                try:
                    async with self._rate_lock:
                        while (wait := rate.delay(trio.current_time())) > 0:
                            await trio.sleep(wait)
                finally:
                    link.waiting.discard(scope)
            if scope.cancelled_caught or link.reason is not None:
                return self._lost(link)
        else:
            rate.delay(trio.current_time())
        try:
            link.window.acquire_nowait()
        except trio.WouldBlock:
            await link.window.acquire()  # a closing link releases every waiter
        session = link.session
        if link.reason is not None or link.closing is not None or (
                session.state is not State.BOUND):
            link.window.release()
            return self._lost(link)
        pdu = part.submit_sm(template, sequence=session.next_sequence())
        try:
            return self._send_request(link, pdu)
        except ValueError as exc:  # the values are left out: they may be numbers
            link.window.release()
            reason = re.sub(r"'[^']*'", "…", str(exc))
            return _Outcome("failed", reason=f"the message cannot be encoded: {reason}")

    def _lost(self, link: _Link) -> _Outcome:
        why = link.reason or link.closing or "not bound"
        return _Outcome("retry", reason=f"the SMPP link went down ({why})",
                        retry_after=self._retry_after())

    async def _outcome(self, request: _Waiter) -> _Outcome:
        await request.done.wait()
        response = request.response
        if request.timed_out:
            return _Outcome("unknown", reason=f"no submit_sm_resp within "
                                              f"{self.settings.submit_timeout:g}s")
        if response is None:
            return _Outcome("retry", reason="the SMPP link went down before the SMSC answered",
                            retry_after=self._retry_after())
        status = response.status
        now = trio.current_time()
        if status == CommandStatus.ESME_ROK:
            before = self._rate.rate
            self._rate.accepted(now)
            if self._rate.rate != before:
                self.metrics.send_rate.set(self._rate.rate or 0)
            return _Outcome("ok", message_id=submit_key(getattr(response, "message_id", ""),
                                                        self.settings.receipt_ids))
        name = status_name(status)
        if status in _THROTTLED:
            self.metrics.throttled.inc()
            before = self._rate.rate
            if self._rate.throttled(now):
                # warn when a limit is first learned; later adjustments are routine
                level = logging.WARNING if before == self._rate.max_rate else logging.DEBUG
                log.log(level, "the SMSC keeps throttling (%s on %.0f%% of answers): sending "
                        "at most %.0f submit_sm/s now", name, self._rate.share * 100,
                        self._rate.rate or 0)
                self.metrics.send_rate.set(self._rate.rate or 0)
            # sporadic or not, this message is tried again soon, after a jittered wait
            return _Outcome("retry", reason=f"the SMSC throttled the message ({name})",
                            retry_after=random.uniform(*THROTTLE_RETRY))
        if status in _TEMPORARY:
            return _Outcome("retry", reason=f"the SMSC could not take the message now ({name})",
                            retry_after=2.0)
        if status == CommandStatus.ESME_RINVBNDSTS:
            link = self._link
            if link is not None:
                link.close("the SMSC says we are not bound (ESME_RINVBNDSTS)")
            return _Outcome("retry", reason="the SMSC says we are not bound",
                            retry_after=self._retry_after())
        kind = "generic_nack" if isinstance(response, GenericNack) else "submit_sm_resp"
        return _Outcome("failed", reason=f"the SMSC refused the message: {kind} {name}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, LinkDown):
        return str(exc)
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return f"the connection broke ({type(exc).__name__})"


def _read_receipt(pdu: DeliverSm | DataSm) -> Receipt | None:
    """`receipt_from_pdu`, skipping the text when the TLVs already say "delivered" (the common
    case, and the text parse is most of a receipt's cost)."""
    if pdu.receipted_message_id and pdu.message_state == MessageState.DELIVERED:
        return Receipt(message_id=pdu.receipted_message_id, state="delivered")
    return receipt_from_pdu(pdu)


def _delivery_receipt(receipt: Receipt, forms: IdForms = "same") -> DeliveryReceipt | None:
    """What the store records: delivered, failed (with the reason) or nothing (in transit)."""
    key = receipt_key(receipt.message_id, forms)
    if receipt.state == "delivered":
        return DeliveryReceipt(key, "delivered")
    if receipt.state in _FAILED_STATES:
        error = receipt.stat or receipt.state.upper()
        if receipt.error and receipt.error.strip("0"):
            error += f" err:{receipt.error}"
        return DeliveryReceipt(key, "failed", error)
    return None
