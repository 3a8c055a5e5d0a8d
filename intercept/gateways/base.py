"""The gateway interface: one connection to the SMS network, whatever carries it.

A gateway delivers inbound messages and delivery receipts to a `Sink`, and submits outbound
messages. It acknowledges an inbound message to the network only after `Sink.inbound()` has
returned, which is after the message is committed to the store.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Literal, Protocol

import msgspec
import trio

from ..store import Ingested

if TYPE_CHECKING:
    from ..foundation.metrics import Metrics
    from ..http.routing import Route


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
    status: Literal["sent", "delivered", "failed"]
    error: str | None = None
    outbox_id: str | None = None
    """Our row, when the receipt names it (an HTTP provider's status callback URL carries it);
    such a receipt also settles a row whose submit outcome was lost."""


class Reconciled(msgspec.Struct, frozen=True):
    """What a gateway found out about a submit whose outcome we did not record."""

    sent: bool
    gateway_id: str | None = None


class Sink(Protocol):
    async def inbound(self, message: InboundMessage) -> Ingested:
        """Commit one message (acknowledge it to the network after this returns)."""

    async def inbound_many(self, messages: list[InboundMessage]) -> list[Ingested]:
        """Commit a burst of messages in one transaction (e.g. all PDUs of one socket read)."""


    async def receipts(self, receipts: list[DeliveryReceipt], *, wait: bool = False) -> None:
        """Record delivery receipts; with `wait`, return once they are committed."""

    async def carrier_opt_out(self, their_number: str) -> None:
        """The network refused a message because the recipient opted out (e.g. Twilio 21610):
        record it like a STOP, committed when this returns."""


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

        Raises `GatewayRefused` (refused for good), `GatewayRetryLater` (not accepted now) or
        `GatewayOutcomeUnknown` (it may have gone out).
        """

    def use_metrics(self, metrics: Metrics) -> None:
        """The server's metrics, for a gateway that counts into them."""
        return None

    def listening(self, addresses: list[str]) -> None:
        """The HTTP server is up at `addresses` (a webhook gateway may need its URL)."""
        return None

    def routes(self) -> list[Route]:
        """HTTP routes the gateway serves (an HTTP provider's webhooks)."""
        return []

    def media_credentials(self) -> dict[str, tuple[str, str]]:
        """HTTP Basic credentials by host for fetching inbound media (only from that host)."""
        return {}

    def may_have_sent(self, outbox_id: str) -> bool:
        """After a `submit` was cancelled (shutdown): whether any of the message may have
        reached the network. False lets the sender put it back in the queue instead of
        leaving its outcome unknown."""
        return True

    async def reconcile(self, message: OutboundMessage, *, since: float) -> Reconciled | None:
        """Whether a message submitted (at wall time `since` or later) before a crash actually
        went out, if the gateway can tell; None when it cannot."""
        return None
