"""The SMPP 3.4 session of an ESME as a sans-IO state machine (h11's shape, beside the codec).

No sockets, no trio, no clock: the driver (``client.py``) hands in what it read and the time,
and writes what comes back::

    session = Session(window=100, timeout=30, enquire_link_interval=30, now=now)
    write(session.send(BindTransceiver(sequence=session.next_sequence(), ...), now=now))
    session.receive_data(read(), now)
    while (event := session.next_event()) is not None:
        ...                                   # Answered, Received, Replied, Malformed, ...
    write(session.data_to_send())             # what the session answered by itself

States (`State`) and what moves them::

    CLOSED ──send bind──► BINDING ──bind_resp ESME_ROK──► BOUND ──send unbind──► UNBINDING
      ▲                      │ error status or generic_nack    │ the SMSC's unbind      │
      └──────────────────────┴─────────────────────────────────┴───────── unbind_resp ◄┘

The session numbers our requests (`next_sequence`), matches each response to its request
(`Answered`; a response nothing waits for is `Stray`), bounds the submit window (`window`,
`in_flight`), answers the SMSC's enquire_link and unbind itself, refuses a message while not
bound (ESME_RINVBNDSTS) and any request an ESME does not take (generic_nack ESME_RINVCMDID),
answers malformed PDUs (`Malformed`), and leaves deliver_sm/data_sm to the driver (`Received`),
which answers them with `send()` once the message is committed. Timeouts are computed from the
`now` passed in: `expire(now)`, `enquire_link_due(now)`, `deadline()`.

Asking for something the state forbids raises `LocalProtocolError` and changes nothing; a peer
that breaks the protocol (a frame that cannot be re-framed, a response of the wrong kind) makes
`next_event()` raise `RemoteProtocolError`, then and on every later call. Nothing else is
raised for any bytes received.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from typing import Any

import msgspec

from ...errors import LocalProtocolError, RemoteProtocolError
from .codec import (
    DEFAULT_MAX_LENGTH,
    MAX_SEQUENCE,
    RESPONSE_BIT,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    CommandStatus,
    DataSm,
    Decoder,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    MalformedPdu,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    encode,
    next_sequence,
    response_for,
)

Counts = defaultdict[tuple[str, int, int], int]
"""PDUs by (direction "in" | "out", command_id, status); `SmppMetrics.pdu_counts`."""


class State(enum.Enum):
    """Where the session is; see the module's diagram."""

    CLOSED = "closed"
    BINDING = "binding"
    BOUND = "bound"
    UNBINDING = "unbinding"


_REQUESTS: dict[type[Pdu], tuple[frozenset[State], State | None]] = {
    BindTransceiver: (frozenset({State.CLOSED}), State.BINDING),
    BindTransmitter: (frozenset({State.CLOSED}), State.BINDING),
    BindReceiver: (frozenset({State.CLOSED}), State.BINDING),
    SubmitSm: (frozenset({State.BOUND}), None),
    DataSm: (frozenset({State.BOUND}), None),
    EnquireLink: (frozenset({State.BINDING, State.BOUND, State.UNBINDING}), None),
    Unbind: (frozenset({State.BOUND}), State.UNBINDING),
}
"""The requests we may send: in which states, and the state they lead to (None: unchanged)."""

_WINDOWED = frozenset({CommandId.SUBMIT_SM, CommandId.DATA_SM})
"""Requests that take a window slot until they are answered or expire."""
_BINDS = frozenset({CommandId.BIND_TRANSCEIVER, CommandId.BIND_TRANSMITTER,
                    CommandId.BIND_RECEIVER})
_RECEIVING = frozenset({State.BOUND, State.UNBINDING})
"""States in which the SMSC may deliver messages."""


class Request:
    """One of our requests waiting for its response; `token` is the driver's own handle."""

    __slots__ = ("command_id", "sent_at", "sequence", "token")

    def __init__(self, sequence: int, command_id: int, sent_at: float, token: Any):
        self.sequence = sequence
        self.command_id = command_id
        self.sent_at = sent_at
        self.token = token

    @property
    def name(self) -> str:
        """The SMPP name of the request, e.g. ``submit_sm``."""
        return CommandId(self.command_id).name.lower()

    def __repr__(self) -> str:
        return f"<Request {self.name} sequence={self.sequence} sent_at={self.sent_at:g}>"


def _name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"command 0x{command_id:08x}"


# --- events (what `next_event()` returns)


class Event(msgspec.Struct, frozen=True):
    """Base of the session's events."""


class Answered(Event, frozen=True):
    """The response (or generic_nack) to one of our requests; its window slot is free again.

    A bind is answered with state BOUND (ESME_ROK) or CLOSED; an unbind with state CLOSED."""

    request: Request
    pdu: Pdu


class Received(Event, frozen=True):
    """A deliver_sm or data_sm (a message or a receipt): commit it, then `send()` its answer."""

    pdu: DeliverSm | DataSm


class Replied(Event, frozen=True):
    """A request of the SMSC's that the session answered itself (in `data_to_send()`):
    enquire_link, unbind, a message while not bound, a request an ESME does not take."""

    pdu: Pdu
    reply: Pdu


class Malformed(Event, frozen=True):
    """A frame that could not be decoded, and the answer queued for it (None for a response).

    When it was the response to one of our requests, an `Answered` with its status follows."""

    pdu: MalformedPdu
    reply: Pdu | None


class Stray(Event, frozen=True):
    """A response to nothing we wait for (late after `expire()`, or an unknown sequence)."""

    pdu: Pdu


class Closed(Event, frozen=True):
    """The SMSC ended the session (it unbound, or closed the connection): state CLOSED."""

    reason: str


class Session:
    """One ESME session over one connection; see the module docstring.

    `window`: submit_sm/data_sm in flight at most. `timeout`: seconds a request may wait for
    its response (`expire`). `enquire_link_interval`: seconds without receiving anything before
    `enquire_link_due` says to probe. `now` is the time the connection opened; times passed in
    later never go backwards. `counts`, when given, counts every PDU read and written.
    """

    def __init__(self, *, window: int, timeout: float, enquire_link_interval: float,
                 now: float, max_length: int = DEFAULT_MAX_LENGTH, counts: Counts | None = None):
        if window < 1:
            raise ValueError(f"window is {window}; it must be at least 1.")
        self.window = window
        self.timeout = timeout
        self.enquire_link_interval = enquire_link_interval
        self.state = State.CLOSED
        self.last_received = now
        """When bytes last arrived (a live link needs no enquire_link)."""
        self.error: RemoteProtocolError | None = None
        """Set once the SMSC broke the protocol: nothing more is read, no request is sent."""
        self.in_flight = 0
        """Windowed requests (submit_sm, data_sm) sent and not yet answered or expired."""
        self.counts: Counts = counts if counts is not None else defaultdict(int)
        self._decoder = Decoder(max_length=max_length)
        self._sequence = 0
        self._outstanding: dict[int, Request] = {}
        self._unanswered: dict[int, tuple[int, int]] = {}
        """The SMSC's requests left to the driver: sequence -> (command_id, how many)."""
        self._enquiring = 0
        self._queued: list[Event] = []
        self._out: list[bytes] = []
        self._gone = False

    # -- reading

    def receive_data(self, data: bytes, now: float) -> None:
        """Hand in bytes read from the connection; ``b""`` means the SMSC closed it."""
        if not data:
            if not self._gone:
                self._gone = True
                self.state = State.CLOSED
                self._queued.append(Closed("the SMSC closed the connection"))
            return
        self.last_received = now
        self._decoder.feed(data)

    def next_event(self) -> Event | None:
        """The next event from the bytes received, or None until more arrive."""
        if self._queued:
            return self._queued.pop(0)
        if self.error is not None:
            raise self.error
        pdu = self._decoder.next_pdu()
        if pdu is None:
            return None
        if type(pdu) is MalformedPdu:
            return self._malformed(pdu)
        return self._dispatch(pdu)

    def _dispatch(self, pdu: Pdu) -> Event:
        cls = type(pdu)
        command_id = pdu.command_id
        self.counts["in", command_id, pdu.status] += 1
        if command_id & RESPONSE_BIT:
            return self._response(pdu)
        if cls is DeliverSm or cls is DataSm:
            if self.state in _RECEIVING:
                entry = self._unanswered.get(pdu.sequence)
                self._unanswered[pdu.sequence] = (command_id, 1 if entry is None
                                                  else entry[1] + 1)
                return Received(pdu)
            return self._reply(pdu, response_for(pdu, CommandStatus.ESME_RINVBNDSTS))
        if cls is EnquireLink:
            return self._reply(pdu, EnquireLinkResp(sequence=pdu.sequence))
        if cls is Unbind:
            event = self._reply(pdu, UnbindResp(sequence=pdu.sequence))
            self.state = State.CLOSED
            self._queued.append(Closed("the SMSC unbound"))
            return event
        # a request an ESME does not take (a bind, a submit_sm...)
        return self._reply(pdu, GenericNack(sequence=pdu.sequence,
                                            status=CommandStatus.ESME_RINVCMDID))

    def data_to_send(self) -> bytes:
        """The answers the session wrote by itself since the last call (b"" when none)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def _reply(self, pdu: Pdu, reply: Pdu) -> Replied:
        self._write(reply)
        return Replied(pdu, reply)

    def _write(self, pdu: Pdu) -> None:
        self._out.append(encode(pdu))
        self.counts["out", pdu.command_id, pdu.status] += 1

    def _response(self, pdu: Pdu) -> Event:
        request = self._outstanding.get(pdu.sequence)
        if request is None:
            return Stray(pdu)
        if pdu.command_id != request.command_id | RESPONSE_BIT and type(pdu) is not GenericNack:
            raise self._fail(f"the SMSC answered {request.name} (sequence {pdu.sequence}) with "
                             f"a {pdu.command_name}")
        self._settle(request, pdu)
        return Answered(request, pdu)

    def _settle(self, request: Request, pdu: Pdu | None) -> None:
        """Forget `request` (answered by `pdu`, or expired when None) and move the state."""
        del self._outstanding[request.sequence]
        command_id = request.command_id
        if command_id in _WINDOWED:
            self.in_flight -= 1
        elif command_id == CommandId.ENQUIRE_LINK:
            self._enquiring -= 1
        elif command_id in _BINDS:
            if self.state is State.BINDING:
                ok = (pdu is not None and pdu.command_id == command_id | RESPONSE_BIT
                      and pdu.status == CommandStatus.ESME_ROK)
                self.state = State.BOUND if ok else State.CLOSED
        elif command_id == CommandId.UNBIND and self.state is State.UNBINDING:
            self.state = State.CLOSED

    def _malformed(self, pdu: MalformedPdu) -> Malformed:
        self.counts["in", pdu.command_id or 0, pdu.status] += 1
        reply = response_for(pdu)
        if reply is not None:
            self._write(reply)
        elif pdu.sequence is not None and pdu.sequence in self._outstanding:
            # A response we cannot read: its request is answered with the status it carried.
            status = pdu.command_status or 0
            if pdu.command_id == CommandId.SUBMIT_SM_RESP:
                settled: Pdu = SubmitSmResp(sequence=pdu.sequence, status=status)
            else:
                settled = GenericNack(sequence=pdu.sequence, status=status or pdu.status)
            request = self._outstanding[pdu.sequence]
            if pdu.command_id not in (request.command_id | RESPONSE_BIT,
                                      CommandId.GENERIC_NACK):
                self._fail(f"the SMSC answered {request.name} (sequence {pdu.sequence}) "
                           f"with a malformed {_name(pdu.command_id)}")
            else:
                self._settle(request, settled)
                self._queued.append(Answered(request, settled))
        if pdu.fatal:
            self.error = self._fail("the SMSC sent a PDU that cannot be framed")
        return Malformed(pdu, reply)

    def _fail(self, reason: str) -> RemoteProtocolError:
        self.error = RemoteProtocolError(reason)
        return self.error

    # -- writing

    def next_sequence(self) -> int:
        """A sequence number for our next request: 1, 2, ... 0x7FFFFFFF, then 1 again,
        skipping any still waiting for a response."""
        sequence = next_sequence(self._sequence)
        while sequence in self._outstanding:
            sequence = next_sequence(sequence)
        self._sequence = sequence
        return sequence

    def send(self, pdu: Pdu, *, now: float, token: Any = None) -> bytes:
        """The bytes of `pdu`, a request of ours or the answer to a request of the SMSC's
        (answers may still be written after a `RemoteProtocolError`, requests not).

        A request is remembered (with `token`, returned in its `Answered`) until its response
        or `expire()`. Raises `LocalProtocolError` when the state, the window or the sequence
        number forbids it, and ValueError when a field does not fit the PDU (nothing changes).
        """
        if self._gone:
            raise LocalProtocolError("the connection is closed")
        if pdu.command_id & RESPONSE_BIT:
            return self._send_response(pdu)
        if self.error is not None:
            raise LocalProtocolError(f"no request can be sent after a protocol error "
                                     f"({self.error})")
        rule = _REQUESTS.get(type(pdu))
        if rule is None:
            raise LocalProtocolError(f"an ESME does not send {pdu.command_name}")
        states, after = rule
        if self.state not in states:
            raise LocalProtocolError(f"{pdu.command_name} cannot be sent while "
                                     f"{self.state.value}")
        sequence = pdu.sequence
        if not 1 <= sequence <= MAX_SEQUENCE:
            raise LocalProtocolError(f"sequence {sequence} is outside 1..{MAX_SEQUENCE}")
        if sequence in self._outstanding:
            raise LocalProtocolError(f"sequence {sequence} is still waiting for the response "
                                     f"to a {self._outstanding[sequence].name}")
        command_id = pdu.command_id
        windowed = command_id in _WINDOWED
        if windowed and self.in_flight >= self.window:
            raise LocalProtocolError(f"the window is full ({self.window} requests in flight)")
        frame = encode(pdu)
        self._outstanding[sequence] = Request(sequence, command_id, now, token)
        if windowed:
            self.in_flight += 1
        elif command_id == CommandId.ENQUIRE_LINK:
            self._enquiring += 1
        if after is not None:
            self.state = after
        self.counts["out", command_id, 0] += 1
        return frame

    def _send_response(self, pdu: Pdu) -> bytes:
        sequence = pdu.sequence
        entry = self._unanswered.get(sequence)
        if entry is None:
            raise LocalProtocolError(f"{pdu.command_name} answers sequence {sequence}, which "
                                     "no request of the SMSC's waiting for an answer has")
        command_id, waiting = entry
        if pdu.command_id != command_id | RESPONSE_BIT and type(pdu) is not GenericNack:
            raise LocalProtocolError(f"{pdu.command_name} cannot answer the "
                                     f"{CommandId(command_id).name.lower()} of sequence "
                                     f"{sequence}")
        frame = encode(pdu)
        if waiting == 1:
            del self._unanswered[sequence]
        else:
            self._unanswered[sequence] = (command_id, waiting - 1)
        self.counts["out", pdu.command_id, pdu.status] += 1
        return frame

    # -- time

    def enquire_link_due(self, now: float) -> bool:
        """Whether to send an enquire_link: bound, none in flight, and nothing received for
        `enquire_link_interval`."""
        return (self.state is State.BOUND and not self._enquiring
                and now - self.last_received >= self.enquire_link_interval)

    def expire(self, now: float) -> list[Request]:
        """Forget and return the requests unanswered for `timeout` (oldest first); their
        window slots are free again. An expired bind or unbind leaves the session CLOSED."""
        horizon = now - self.timeout
        expired = []
        for request in self._outstanding.values():  # in the order sent, so oldest first
            if request.sent_at > horizon:
                break
            expired.append(request)
        for request in expired:
            self._settle(request, None)
        return expired

    def deadline(self) -> float:
        """When `expire()` or `enquire_link_due()` next has something to say (math.inf: never,
        until something is sent or received)."""
        deadline = math.inf
        if self._outstanding:
            oldest = next(iter(self._outstanding.values()))
            deadline = oldest.sent_at + self.timeout
        if self.state is State.BOUND and not self._enquiring:
            deadline = min(deadline, self.last_received + self.enquire_link_interval)
        return deadline

    # -- the end

    @property
    def outstanding(self) -> list[Request]:
        """Our requests waiting for a response, oldest first."""
        return list(self._outstanding.values())

    def close(self) -> list[Request]:
        """The connection is gone: CLOSED, nothing more can be sent; returns the requests that
        will never be answered."""
        requests = list(self._outstanding.values())
        self._outstanding.clear()
        self._unanswered.clear()
        self.in_flight = 0
        self._enquiring = 0
        self._gone = True
        self.state = State.CLOSED
        return requests
