"""A simulated SMSC: a trio SMPP 3.4 server for the tests and the load tests.

    python -m loadtest.smsc --port 2775 --system-id intercept --password secret
    python -m loadtest.smsc --port 2775 --buyers 2000 --turns 5 --ours +12065550100

It accepts binds (checking the credentials), answers submit_sm with message ids, records what
each simulated phone received (concatenated parts joined), sends delivery receipts, and
delivers MO messages from simulated phones (long and Unicode texts split with UDH or SAR, or
sent whole as message_payload or data_sm). MO messages wait in a queue until a receiver is
bound; each is redelivered when its deliver_sm_resp does not come within `redeliver_after`
or the connection drops first, the way a real SMSC does.

Faults on demand: throttle answers (`throttle()`, or `max_rate`), slow answers (`slow()`),
dropped connections before or after the answer to a submit (`drop_on_submit()`) or at once
(`drop_connections()`), malformed PDUs (`send_malformed()`), duplicate deliver_sm
(`duplicate_mo`), unanswered enquire_link (`answer_enquire_link = False`), SMSC-side
enquire_link and unbind.

In a test::

    smsc = Smsc()
    await nursery.start(smsc.run)                  # in-memory links: smsc.connect()
    port = await nursery.start(smsc.serve_tcp)     # or TCP on 127.0.0.1
    await smsc.deliver("+12065550199", "+12065550100", "hi 👋")
    await smsc.wait_for("+12065550199", 1)
    smsc.phones["+12065550199"]                    # ["re: hi 👋"]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import logging
import struct
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable
from functools import partial
from typing import Literal

import msgspec
import trio
import trio.testing

from intercept.gateways.smpp import (
    Bind,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    Decoder,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    MalformedPdu,
    MessageState,
    Pdu,
    Reassembled,
    Reassembler,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_sm,
    encode,
    next_sequence,
    response_for,
    split,
)
from intercept.gateways.smpp.inbound import from_address, to_address

log = logging.getLogger("loadtest.smsc")

DropMode = Literal["before_accept", "before_resp", "after_resp"]
MalformedKind = Literal["unknown_command", "bad_body", "bad_length"]

_BIND_RESP: dict[type[Bind], type[Pdu]] = {
    BindTransceiver: BindTransceiverResp, BindTransmitter: BindTransmitterResp,
    BindReceiver: BindReceiverResp,
}


class Mt(msgspec.Struct, frozen=True):
    """A message a simulated phone received (all its parts)."""

    source: str
    destination: str
    text: str
    message_ids: tuple[str, ...]
    """The SMSC's ids of its parts, in the order they arrived."""


class Delivery:
    """One MO message in the SMSC's queue (all its parts); `acked` is set when every part is."""

    def __init__(self, pdus: list[DeliverSm | DataSm]):
        self.pdus = pdus
        self.remaining = len(pdus)
        self.acked = trio.Event()
        self.attempts = 0


class _Mo:
    __slots__ = ("delivery", "pdu", "sent_at")

    def __init__(self, pdu: DeliverSm | DataSm, delivery: Delivery | None):
        self.pdu = pdu
        self.delivery = delivery
        self.sent_at = 0.0


class _Session:
    def __init__(self, number: int, stream: trio.abc.Stream):
        self.number = number
        self.stream = stream
        self.decoder = Decoder()
        self.out: list[bytes] = []
        self.out_ids: list[str] = []
        self.out_ready = trio.Event()
        self.sequence = 0
        self.kind: type[Bind] | None = None
        self.outstanding: dict[int, _Mo] = {}
        self.pump_ready = trio.Event()
        self.scope = trio.CancelScope()
        self.closing = False
        self.dead = False
        self.pings: dict[int, trio.Event] = {}
        self.system_id = ""

    @property
    def receives(self) -> bool:
        return self.kind in (BindTransceiver, BindReceiver)

    def next_sequence(self) -> int:
        self.sequence = next_sequence(self.sequence)
        return self.sequence

    def write(self, frame: bytes) -> None:
        self.out.append(frame)
        self.out_ready.set()


class Smsc:
    """The simulated SMSC; see the module docstring."""

    def __init__(self, *, system_id: str = "intercept", password: str = "secret",
                 receipts: bool = True, receipt_delay: float = 0.0,
                 receipt_stat: str | Callable[[Mt], str] = "DELIVRD", window: int = 100,
                 redeliver_after: float = 30.0, max_rate: float | None = None,
                 id_prefix: str = ""):
        self.system_id = system_id
        self.password = password
        self.receipts = receipts
        self.receipt_delay = receipt_delay
        self.receipt_stat = receipt_stat
        self.window = window
        self.redeliver_after = redeliver_after
        self.max_rate = max_rate
        self.throttled_answers = 0
        self.id_prefix = id_prefix
        self.phones: defaultdict[str, list[str]] = defaultdict(list)
        """Texts each simulated phone received, by its number (+E.164)."""
        self.messages: list[Mt] = []
        self.submits: list[SubmitSm] = []
        """Every submit_sm accepted, part by part."""
        self.answered: set[str] = set()
        """Message ids whose submit_sm_resp was written to the connection."""
        self.generic_nacks: list[GenericNack] = []
        """generic_nacks the ESME sent us."""
        self.binds = 0
        self.bind_failures = 0
        self.unbinds = 0
        self.enquire_links = 0
        self.mo_acked = 0
        self.wrong_responses = 0
        self.redeliveries = 0
        self.sessions: dict[int, _Session] = {}
        self.bound = trio.Event()
        """Set once any session is bound (a new Event after all sessions closed)."""
        self.answer_enquire_link = True
        self.duplicate_mo = 0
        """Send the next N deliver_sm twice (a redelivery the ESME must recognise)."""
        self._throttle: deque[int | None] = deque()
        self._slow: list[float] = [0.0, 0]
        self._drop: tuple[DropMode, int] | None = None
        self._mo: deque[_Mo] = deque()
        self._ids = itertools.count(1)
        self._session_numbers = itertools.count(1)
        self._reassembler = Reassembler(timeout=600)
        self._waiters: dict[str, trio.Event] = {}
        self._changed = trio.Event()
        self._timed: list[tuple[float, int, _Mo]] = []
        self._timed_wakeup = trio.Event()
        self._tiebreak = itertools.count()
        self._nursery: trio.Nursery | None = None
        self._bucket = (0.0, 0.0)

    # -- running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The SMSC's own tasks (delayed receipts, redelivery); sessions run in here too."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._timed_sender)
            task_status.started()
            await trio.sleep_forever()

    async def serve_tcp(self, port: int = 0, *, host: str = "127.0.0.1",
                        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on `host`:`port` (0: any free port); `task_status.started(port)`."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        async with trio.open_nursery() as nursery:
            self._nursery = self._nursery or nursery
            if self._nursery is nursery:
                nursery.start_soon(self._timed_sender)
            task_status.started(listeners[0].socket.getsockname()[1])
            await trio.serve_listeners(self.handle, listeners)

    async def connect(self) -> trio.abc.Stream:
        """An in-memory connection to this SMSC (for `SmppGateway(connect=smsc.connect)`)."""
        assert self._nursery is not None, "start Smsc.run first"
        client, server = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self.handle, server)
        return client

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one ESME connection until it closes."""
        session = _Session(next(self._session_numbers), stream)
        self.sessions[session.number] = session
        try:
            with session.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader, session)
                    nursery.start_soon(self._writer, session)
                    nursery.start_soon(self._pump, session)
                    nursery.start_soon(self._redeliverer, session)
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            del self.sessions[session.number]
            self._requeue(session)
            if not any(s.kind for s in self.sessions.values()):
                self.bound = trio.Event()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    def _close(self, session: _Session) -> None:
        session.dead = True
        session.scope.cancel()

    def _close_after_flush(self, session: _Session) -> None:
        """Stop taking PDUs; close once what is already answered has been written."""
        session.dead = True
        session.closing = True
        session.out_ready.set()

    def _requeue(self, session: _Session) -> None:
        """MO messages sent on a dead session and not answered go out again first."""
        waiting = sorted(session.outstanding.items())
        session.outstanding.clear()
        for _, mo in reversed(waiting):
            self.redeliveries += 1
            self._mo.appendleft(mo)
        if waiting:
            self._wake_pumps()

    # -- the session's tasks

    async def _writer(self, session: _Session) -> None:
        while True:
            if not session.out:
                if session.closing:
                    self._close(session)
                    return
                session.out_ready = trio.Event()
                await session.out_ready.wait()
                continue
            frames, session.out = session.out, []
            ids, session.out_ids = session.out_ids, []
            await session.stream.send_all(b"".join(frames))
            self.answered.update(ids)

    async def _reader(self, session: _Session) -> None:
        while True:
            data = await session.stream.receive_some(65536)
            if not data:
                self._close(session)
                return
            session.decoder.feed(data)
            for pdu in session.decoder:
                if session.dead:
                    return
                self._dispatch(session, pdu)

    def _answer(self, session: _Session, pdu: Pdu) -> None:
        session.write(encode(pdu))

    def _dispatch(self, session: _Session, pdu: Pdu | MalformedPdu) -> None:
        cls = type(pdu)
        if cls is SubmitSm:
            self._on_submit(session, pdu)  # type: ignore[arg-type]
        elif cls is DeliverSmResp or cls is DataSmResp:
            mo = session.outstanding.get(pdu.sequence)
            if mo is not None:
                if (cls is DataSmResp) != (type(mo.pdu) is DataSm):
                    self.wrong_responses += 1  # a deliver_sm_resp to a data_sm, or the reverse
                    return
                del session.outstanding[pdu.sequence]
                self._acked(mo, pdu.status)
                session.pump_ready.set()
        elif cls is MalformedPdu:
            answer = response_for(pdu)  # type: ignore[arg-type]
            if answer is not None:
                self._answer(session, answer)
            if pdu.fatal:  # type: ignore[union-attr]
                session.closing = True
                session.out_ready.set()
        elif isinstance(pdu, Bind):
            self._on_bind(session, pdu)
        elif cls is EnquireLink:
            self.enquire_links += 1
            if self.answer_enquire_link:
                self._answer(session, EnquireLinkResp(sequence=pdu.sequence))
        elif cls is EnquireLinkResp:
            event = session.pings.pop(pdu.sequence, None)
            if event is not None:
                event.set()
        elif cls is Unbind:
            self.unbinds += 1
            self._answer(session, UnbindResp(sequence=pdu.sequence))
            session.kind = None
            session.closing = True
            session.out_ready.set()
        elif cls is GenericNack:
            self.generic_nacks.append(pdu)  # type: ignore[arg-type]
        elif cls is UnbindResp:
            session.closing = True
            session.out_ready.set()
        elif not pdu.is_response:  # type: ignore[union-attr]
            self._answer(session, GenericNack(sequence=pdu.sequence,
                                              status=CommandStatus.ESME_RINVCMDID))

    def _on_bind(self, session: _Session, pdu: Bind) -> None:
        resp = _BIND_RESP[type(pdu)]
        if session.kind is not None:
            self._answer(session, resp(sequence=pdu.sequence, status=CommandStatus.ESME_RALYBND))
            return
        if pdu.system_id != self.system_id:
            status = CommandStatus.ESME_RINVSYSID
        elif pdu.password != self.password:
            status = CommandStatus.ESME_RINVPASWD
        else:
            status = CommandStatus.ESME_ROK
        if status:
            self.bind_failures += 1
            self._answer(session, resp(sequence=pdu.sequence, status=status))
            return
        self.binds += 1
        session.kind = type(pdu)
        session.system_id = pdu.system_id
        self._answer(session, resp(sequence=pdu.sequence, system_id="smscsim",
                                   sc_interface_version=0x34))
        self.bound.set()
        session.pump_ready.set()

    def _over_rate(self) -> bool:
        if self.max_rate is None:
            return False
        now = trio.current_time()
        stamp, tokens = self._bucket
        tokens = min(max(1.0, self.max_rate / 10), tokens + (now - stamp) * self.max_rate)
        if tokens < 1.0:
            self._bucket = (now, tokens)
            return True
        self._bucket = (now, tokens - 1.0)
        return False

    def _on_submit(self, session: _Session, pdu: SubmitSm) -> None:
        if session.kind not in (BindTransceiver, BindTransmitter):
            self._answer(session, SubmitSmResp(sequence=pdu.sequence,
                                               status=CommandStatus.ESME_RINVBNDSTS))
            return
        drop = None
        if self._drop is not None:
            mode, countdown = self._drop
            if countdown <= 1:
                drop = mode
                self._drop = None
            else:
                self._drop = (mode, countdown - 1)
        if drop == "before_accept":
            self._close_after_flush(session)
            return
        if self._throttle and (status := self._throttle.popleft()) is not None:
            if status == CommandStatus.ESME_RTHROTTLED:
                self.throttled_answers += 1
            self._answer(session, SubmitSmResp(sequence=pdu.sequence, status=status))
            return
        if self._over_rate():
            self.throttled_answers += 1
            self._answer(session, SubmitSmResp(sequence=pdu.sequence,
                                               status=CommandStatus.ESME_RTHROTTLED))
            return
        message_id = f"{self.id_prefix}{next(self._ids):x}"
        self.submits.append(pdu)
        self._record(pdu, message_id)
        if drop == "before_resp":
            self._close_after_flush(session)
            return
        resp = SubmitSmResp(sequence=pdu.sequence, message_id=message_id)
        if self._slow[1]:
            delay = self._slow[0]
            self._slow[1] -= 1
            assert self._nursery is not None
            self._nursery.start_soon(self._answer_later, session, resp, delay)
        else:
            self._answer(session, resp)
            session.out_ids.append(message_id)
        if drop == "after_resp":
            self._close_after_flush(session)

    async def _answer_later(self, session: _Session, resp: SubmitSmResp, delay: float) -> None:
        await trio.sleep(delay)
        if session.number in self.sessions and not session.scope.cancel_called:
            self._answer(session, resp)
            session.out_ids.append(resp.message_id)

    def _record(self, pdu: SubmitSm, message_id: str) -> None:
        source = from_address(pdu.source_addr, pdu.source_addr_ton)
        destination = from_address(pdu.destination_addr, pdu.dest_addr_ton)
        done = self._reassembler.add(source, destination, decode_sm(pdu), trio.current_time(),
                                     token=message_id)
        if not isinstance(done, Reassembled):
            return
        ids = tuple(done.tokens)
        mt = Mt(source=source, destination=destination, text=done.text, message_ids=ids)
        self.messages.append(mt)
        self.phones[destination].append(done.text)
        waiter = self._waiters.pop(destination, None)
        if waiter is not None:
            waiter.set()
        self._changed.set()
        if self.receipts and pdu.registered_delivery & 1:
            for message_id_ in ids:
                receipt = self._receipt(mt, message_id_)
                if self.receipt_delay > 0:
                    self._later(self.receipt_delay, _Mo(receipt, None))
                else:
                    self._enqueue(_Mo(receipt, None))

    def _receipt(self, mt: Mt, message_id: str) -> DeliverSm:
        stat = self.receipt_stat if isinstance(self.receipt_stat, str) else self.receipt_stat(mt)
        state = {"DELIVRD": MessageState.DELIVERED, "EXPIRED": MessageState.EXPIRED,
                 "UNDELIV": MessageState.UNDELIVERABLE, "REJECTD": MessageState.REJECTED,
                 "DELETED": MessageState.DELETED, "ENROUTE": MessageState.ENROUTE,
                 "ACCEPTD": MessageState.ACCEPTED}.get(stat, MessageState.UNKNOWN)
        stamp = time.strftime("%y%m%d%H%M", time.gmtime())
        err = "000" if stat == "DELIVRD" else "001"
        text = (f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
                f"submit date:{stamp} done date:{stamp} stat:{stat} err:{err} text:"
                + mt.text[:20].encode("ascii", "replace").decode())
        return DeliverSm(sequence=0, source_addr_ton=1, source_addr_npi=1,
                         source_addr=to_address(mt.destination), dest_addr_ton=1,
                         dest_addr_npi=1, destination_addr=to_address(mt.source),
                         esm_class=0x04, short_message=text.encode("latin-1"),
                         receipted_message_id=message_id, message_state=int(state))

    # -- MO delivery

    def _enqueue(self, mo: _Mo) -> None:
        self._mo.append(mo)
        self._wake_pumps()

    def _wake_pumps(self) -> None:
        for session in self.sessions.values():
            session.pump_ready.set()

    def _later(self, delay: float, mo: _Mo) -> None:
        heapq.heappush(self._timed, (trio.current_time() + delay, next(self._tiebreak), mo))
        self._timed_wakeup.set()

    async def _timed_sender(self) -> None:
        while True:
            if not self._timed:
                self._timed_wakeup = trio.Event()
                await self._timed_wakeup.wait()
                continue
            at = self._timed[0][0]
            now = trio.current_time()
            if at > now:
                self._timed_wakeup = trio.Event()
                with trio.move_on_at(at):
                    await self._timed_wakeup.wait()
                continue
            self._enqueue(heapq.heappop(self._timed)[2])

    async def _pump(self, session: _Session) -> None:
        """Send queued MO messages and receipts while the session is a bound receiver."""
        while True:
            if not (session.receives and self._mo and len(session.outstanding) < self.window):
                session.pump_ready = trio.Event()
                await session.pump_ready.wait()
                continue
            now = trio.current_time()
            while self._mo and len(session.outstanding) < self.window:
                mo = self._mo.popleft()
                self._send_mo(session, mo, now)
                if self.duplicate_mo > 0 and mo.delivery is not None:
                    self.duplicate_mo -= 1
                    self._send_mo(session, _Mo(mo.pdu, None), now)
            await trio.sleep(0)

    def _send_mo(self, session: _Session, mo: _Mo, now: float) -> None:
        sequence = session.next_sequence()
        mo.sent_at = now
        session.outstanding[sequence] = mo
        if mo.delivery is not None:
            mo.delivery.attempts += 1
        session.write(encode(msgspec.structs.replace(mo.pdu, sequence=sequence)))

    def _acked(self, mo: _Mo, status: int) -> None:
        if status != CommandStatus.ESME_ROK:
            self._enqueue(mo)  # the ESME could not take it now: try again
            return
        delivery = mo.delivery
        if delivery is not None:
            self.mo_acked += 1
            delivery.remaining -= 1
            if delivery.remaining <= 0:
                delivery.acked.set()

    async def _redeliverer(self, session: _Session) -> None:
        """deliver_sm unanswered after `redeliver_after` go out again (like a real SMSC)."""
        while True:
            await trio.sleep(max(0.05, self.redeliver_after / 4))
            horizon = trio.current_time() - self.redeliver_after
            late = [seq for seq, mo in session.outstanding.items() if mo.sent_at <= horizon]
            for sequence in late:
                mo = session.outstanding.pop(sequence)
                self.redeliveries += 1
                self._mo.appendleft(mo)
            if late:
                session.pump_ready.set()

    def deliver_nowait(self, source: str, destination: str, text: str, *,
                       mode: Literal["udh", "udh16", "sar", "payload"] = "udh",
                       encoding: Literal["auto", "gsm7", "ucs2"] = "auto", ref: int | None = None,
                       data_sm: bool = False) -> Delivery:
        """Queue an MO message from phone `source` to our number `destination`."""
        if ref is None:
            ref = next(self._ids) & (0xFF if mode == "udh" else 0xFFFF)
        pdus: list[DeliverSm | DataSm] = []
        for part in split(text, ref=ref, mode=mode, encoding=encoding):
            common = dict(sequence=0, source_addr_ton=1, source_addr_npi=1,
                          source_addr=to_address(source), dest_addr_ton=1, dest_addr_npi=1,
                          destination_addr=to_address(destination), esm_class=part.esm_class,
                          data_coding=part.data_coding, sar_msg_ref_num=part.sar_msg_ref_num,
                          sar_total_segments=part.sar_total_segments,
                          sar_segment_seqnum=part.sar_segment_seqnum)
            if data_sm:
                pdus.append(DataSm(message_payload=part.message_payload
                                   if part.message_payload is not None else part.short_message,
                                   **common))  # type: ignore[arg-type]
            else:
                pdus.append(DeliverSm(short_message=part.short_message,
                                      message_payload=part.message_payload,
                                      **common))  # type: ignore[arg-type]
        delivery = Delivery(pdus)
        for pdu in pdus:
            self._mo.append(_Mo(pdu, delivery))
        self._wake_pumps()
        return delivery

    async def deliver(self, source: str, destination: str, text: str, **options: object
                      ) -> Delivery:
        """`deliver_nowait`, then wait until the ESME acknowledged every part."""
        delivery = self.deliver_nowait(source, destination, text, **options)  # type: ignore[arg-type]
        await delivery.acked.wait()
        return delivery

    def deliver_pdu(self, pdu: DeliverSm | DataSm) -> Delivery:
        """Queue a hand-made deliver_sm/data_sm (e.g. a receipt, or odd fields)."""
        delivery = Delivery([pdu])
        self._enqueue(_Mo(pdu, delivery))
        return delivery

    async def wait_for(self, number: str, count: int) -> list[str]:
        """Wait until phone `number` has received `count` messages; return them."""
        while len(self.phones[number]) < count:
            waiter = self._waiters.setdefault(number, trio.Event())
            await waiter.wait()
        return self.phones[number]

    async def drained(self, poll: float = 0.01) -> None:
        """Wait until every queued MO message and receipt has been acknowledged."""
        while self._mo or self._timed or any(s.outstanding for s in self.sessions.values()):
            await trio.sleep(poll)

    async def wait_total(self, count: int) -> None:
        """Wait until the phones have received `count` messages in all."""
        while len(self.messages) < count:
            self._changed = trio.Event()
            await self._changed.wait()

    # -- faults

    def throttle(self, count: int = 1, status: int = CommandStatus.ESME_RTHROTTLED, *,
                 after: int = 0) -> None:
        """Answer `count` submit_sm with `status` (not accepted), after letting `after` pass."""
        self._throttle.extend([None] * after + [status] * count)

    def slow(self, delay: float, count: int = 1) -> None:
        """Answer the next `count` submit_sm (accepted) only after `delay` seconds."""
        self._slow = [delay, count]

    def drop_on_submit(self, mode: DropMode = "before_resp", *, after: int = 1) -> None:
        """Drop the connection on the `after`-th submit_sm from now: before accepting it, after
        accepting it but before answering (the resp-lost edge), or right after answering."""
        self._drop = (mode, after)

    def drop_connections(self) -> None:
        """Close every session now."""
        for session in list(self.sessions.values()):
            self._close(session)

    def send_malformed(self, kind: MalformedKind = "unknown_command") -> None:
        """Write a broken PDU to every bound session."""
        for session in self.sessions.values():
            if session.kind is None:
                continue
            sequence = session.next_sequence()
            if kind == "unknown_command":
                frame = struct.pack(">IIII", 16, 0x00000099, 0, sequence)
            elif kind == "bad_body":  # a deliver_sm that ends inside its source_addr
                frame = struct.pack(">IIII", 20, CommandId.DELIVER_SM, 0, sequence) + b"\0\1\1" \
                    + b"1"
            else:
                frame = struct.pack(">IIII", 8, CommandId.DELIVER_SM, 0, sequence)
            session.write(frame)

    async def enquire_link(self) -> bool:
        """Send enquire_link on every bound session; True when all answered within 5 s."""
        events = []
        for session in self.sessions.values():
            if session.kind is not None:
                sequence = session.next_sequence()
                session.pings[sequence] = event = trio.Event()
                session.write(encode(EnquireLink(sequence=sequence)))
                events.append(event)
        with trio.move_on_after(5):
            for event in events:
                await event.wait()
            return bool(events)
        return False

    def unbind(self) -> None:
        """Ask every bound session to unbind."""
        for session in self.sessions.values():
            if session.kind is not None:
                session.write(encode(Unbind(sequence=session.next_sequence())))

    # -- load

    async def buyers(self, count: int, turns: int, ours: list[str],
                     lines: tuple[str, ...] = ("hey", "how much", "tonight?", "ok", "where")
                     ) -> dict[str, float]:
        """`count` phones each text one of `ours` and wait for the reply, `turns` times."""
        await self.bound.wait()
        start = time.perf_counter()
        cpu = time.process_time()

        async def buyer(i: int) -> None:
            their = f"+1{300 + i // 10_000:03d}555{i % 10_000:04d}"
            our = ours[i % len(ours)]
            for turn in range(turns):
                received = len(self.phones[their])
                self.deliver_nowait(their, our, f"{lines[turn % len(lines)]} #{i}")
                await self.wait_for(their, received + 1)

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(buyer, i)
        elapsed = time.perf_counter() - start
        messages = count * turns
        return {"buyers": count, "turns": turns, "seconds": elapsed,
                "smsc_cpu_share": (time.process_time() - cpu) / elapsed,
                "mo_per_s": messages / elapsed, "mt_per_s": messages / elapsed,
                "messages_per_s": 2 * messages / elapsed}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.smsc", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775, help="0: any free port (printed)")
    parser.add_argument("--system-id", default="intercept")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--no-receipts", action="store_true")
    parser.add_argument("--receipt-delay", type=float, default=0.0)
    parser.add_argument("--max-rate", type=float, default=None, help="throttle above this /s")
    parser.add_argument("--buyers", type=int, default=0,
                        help="simulated phones that text --ours once an ESME binds")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--ours", default="+12065550100", help="comma-separated numbers")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    smsc = Smsc(system_id=args.system_id, password=args.password,
                receipts=not args.no_receipts, receipt_delay=args.receipt_delay,
                max_rate=args.max_rate)
    async with trio.open_nursery() as nursery:
        await nursery.start(smsc.run)
        port = await nursery.start(partial(smsc.serve_tcp, args.port, host=args.host))
        print(json.dumps({"listening": f"{args.host}:{port}", "port": port}), flush=True)
        if args.buyers:
            stats = await smsc.buyers(args.buyers, args.turns, args.ours.split(","))
            with trio.move_on_after(10):  # the receipts still queued go out first
                await smsc.drained()
            print(json.dumps(stats), flush=True)  # then serve on until terminated
        while True:
            await trio.sleep(5)
            log.info("binds %d, submits %d, MO acked %d, sessions %d", smsc.binds,
                     len(smsc.submits), smsc.mo_acked, len(smsc.sessions))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s smsc %(message)s")
    try:
        trio.run(_main, _parse(argv))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
