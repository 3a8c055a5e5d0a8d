"""The transport types: what passes between a gateway and the rest of the server.

A `Gateway` is one connection to the SMS network, whatever carries it (the simulator, an SMPP
bind, an HTTP provider). It hands inbound messages and delivery receipts to a `Sink`, which
answers each message with an `Accepted` once it is committed (the gateway acknowledges it to
the network only then), and it submits `OutboundMessage`s. A gateway that takes webhooks
describes them as `Endpoint`s: plain data (method, path, a handler from `WebhookRequest` to
`WebhookResponse`) that the HTTP layer mounts, so no gateway needs the HTTP layer or the store.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, Protocol

import msgspec
import trio

if TYPE_CHECKING:
    from .foundation.metrics import Metrics

_encode = msgspec.json.Encoder().encode


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


class Accepted(msgspec.Struct, frozen=True):
    """An inbound message the sink has committed: the gateway may acknowledge it now."""

    conversation_id: int
    conv_seq: int
    """The message's place in its conversation (1 for the first)."""
    duplicate: bool
    """A redelivery of a message already committed: nothing new was written."""
    replay: bool = False
    """A message purged by retention and delivered again: acknowledged, dropped, and
    conversation_id and conv_seq are 0."""


class Sink(Protocol):
    async def inbound(self, message: InboundMessage) -> Accepted:
        """Commit one message (acknowledge it to the network after this returns)."""

    async def inbound_many(self, messages: list[InboundMessage]) -> list[Accepted]:
        """Commit a burst of messages in one transaction (e.g. all PDUs of one socket read)."""

    async def receipts(self, receipts: list[DeliveryReceipt], *, wait: bool = False) -> None:
        """Record delivery receipts; with `wait`, return once they are committed."""

    async def carrier_opt_out(self, their_number: str) -> None:
        """The network refused a message because the recipient opted out (e.g. Twilio 21610):
        record it like a STOP, committed when this returns."""


# -- webhooks, as data the HTTP layer mounts


class WebhookRequest(msgspec.Struct, frozen=True):
    """One HTTP request to a gateway's endpoint, as it arrived."""

    method: str
    path: str
    """The path as the client sent it (not percent-decoded), without the query."""
    query: str
    """The raw query string, without the '?' ('' when there is none)."""
    headers: tuple[tuple[str, str], ...]
    """(name in lower case, value) pairs, in the order they came."""
    body: bytes
    scheme: str = "http"

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


class WebhookResponse(msgspec.Struct, frozen=True):
    """What a gateway's endpoint answers."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()


def refusal(status: int, message: str, *, retry_after: float | None = None) -> WebhookResponse:
    """``{"error": message}`` with `status`; with `retry_after` (seconds), a Retry-After
    header asking the caller to try again then (whole seconds, at least 1)."""
    headers = (() if retry_after is None else
               (("retry-after", str(max(1, round(retry_after)))),))
    return WebhookResponse(status, _encode({"error": message}), "application/json", headers)


WebhookHandler = Callable[[WebhookRequest], Awaitable[WebhookResponse]]


class Endpoint(msgspec.Struct, frozen=True):
    """One webhook a gateway serves, described for the HTTP layer (which mounts it without
    authentication: the handler checks whatever the provider signs) and its OpenAPI page."""

    method: str
    path: str
    handler: WebhookHandler
    summary: str
    description: str = ""
    statuses: tuple[int, ...] = ()
    """The statuses it answers (for the API description)."""
    content_type: str = "text/plain"
    """The content type of its answers (for the API description)."""
    tags: tuple[str, ...] = ("webhooks",)


# -- the interface every transport implements


class Gateway(abc.ABC):
    """Base class of the transports (sim, SMPP and HTTP providers, in intercept/gateways/)."""

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

    def endpoints(self) -> list[Endpoint]:
        """The webhooks the gateway serves (an HTTP provider's); the HTTP layer mounts them."""
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
