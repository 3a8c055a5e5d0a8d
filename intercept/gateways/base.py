"""The gateway interface, as the transports see it: re-exported from `intercept.transport`.

A gateway delivers inbound messages and delivery receipts to a `Sink`, and submits outbound
messages. It acknowledges an inbound message to the network only after `Sink.inbound()` has
returned (with an `Accepted`), which is after the message is committed to the store. Webhooks
are `Endpoint`s, which the HTTP layer mounts.
"""

from __future__ import annotations

from ..transport import (
    Accepted,
    DeliveryReceipt,
    Endpoint,
    Gateway,
    InboundMessage,
    OutboundMessage,
    Reconciled,
    Sink,
    WebhookRequest,
    WebhookResponse,
    refusal,
)

__all__ = [
    "Accepted", "DeliveryReceipt", "Endpoint", "Gateway", "InboundMessage", "OutboundMessage",
    "Reconciled", "Sink", "WebhookRequest", "WebhookResponse", "refusal",
]
