"""The gateway interface: one connection to the SMS network, whatever carries it.

A gateway delivers inbound messages and delivery receipts to a `Sink`, and submits outbound
messages. It acknowledges an inbound message to the network only after `Sink.inbound()` has
returned, which is after the message is committed to the store.
"""

from __future__ import annotations

import abc
from typing import Literal, Protocol

import msgspec
import trio

from ..store import Ingested


class InboundMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    gateway_id: str
    """The gateway's id for the message: a redelivery carries the same id."""
    our_number: str
    their_number: str
    text: str
    media: tuple[str, ...] = ()


class OutboundMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    outbox_id: str
    our_number: str
    their_number: str
    text: str


class DeliveryReceipt(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    gateway_id: str
    status: Literal["delivered", "failed"]
    error: str | None = None


Reconciled = Literal["sent", "not_sent"] | None
"""What a gateway knows of a submit whose outcome we did not record: None means unknown."""


class Sink(Protocol):
    async def inbound(self, message: InboundMessage) -> Ingested:
        """Commit one message (acknowledge it to the network after this returns)."""

    async def inbound_many(self, messages: list[InboundMessage]) -> list[Ingested]:
        """Commit a burst of messages in one transaction (e.g. all PDUs of one socket read)."""


    async def receipts(self, receipts: list[DeliveryReceipt]) -> None:
        """Record delivery receipts."""


class Gateway(abc.ABC):
    """Base class of the transports (the simulator here; SMPP and HTTP providers elsewhere)."""

    name: str = "gateway"
    max_in_flight: int = 1
    """How many `submit` calls may wait at once (an SMPP window); the sender overlaps
    different conversations up to this."""

    @abc.abstractmethod
    async def run(self, sink: Sink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Connect, call `task_status.started()` when ready, deliver events until cancelled."""

    @abc.abstractmethod
    async def submit(self, message: OutboundMessage) -> str:
        """Send one message; return the gateway's id for it.

        Raises `GatewayError` (refused for good), `GatewayRetryLater` (not accepted now) or
        `GatewayOutcomeUnknown` (it may have gone out).
        """

    async def reconcile(self, outbox_id: str) -> Reconciled:
        """Whether a message submitted before a crash actually went out, if the gateway knows."""
        return None
