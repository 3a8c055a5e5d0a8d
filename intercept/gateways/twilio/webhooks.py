"""The provider's webhooks: inbound messages and status callbacks, both signed.

Every request must carry a valid ``X-Twilio-Signature`` for the URL the provider called (our
``gateway.public_url`` plus the path and query) and its form parameters; otherwise it gets 403
and nothing is written. An inbound message is answered only after it is committed, so a
provider that gets no 200 retries it, and a retried or replayed MessageSid is dropped for good
(the store's unique gateway id). Status callbacks name our outbox row in their URL; a status
never moves backwards, so duplicates and late callbacks change nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, parse_qsl

from ...errors import StoreUnavailable
from ...foundation.phone import mask, to_e164
from ..base import (
    DeliveryReceipt,
    Endpoint,
    InboundMessage,
    Sink,
    WebhookRequest,
    WebhookResponse,
    refusal,
)
from .signature import valid_signature

if TYPE_CHECKING:
    from ...foundation.metrics import Metrics

log = logging.getLogger(__name__)

EMPTY_TWIML = WebhookResponse(
    200, b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
    "text/xml; charset=utf-8")
NO_CONTENT = WebhookResponse(204, b"", "text/plain")

# Twilio's message statuses -> ours. Queued, accepted and the like mean the provider has it.
STATUSES = {
    "accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent",
    "sent": "sent", "delivered": "delivered", "read": "delivered",
    "undelivered": "failed", "failed": "failed", "canceled": "failed",
}
MAX_MEDIA = 10
_FORBIDDEN = ("the X-Twilio-Signature header is missing or does not sign this request (the "
              "signed URL is gateway.public_url + the path; the key is the auth token)")


class WebhookHost(Protocol):
    """What the webhooks need of the gateway that serves them (`TwilioGateway`)."""

    metrics: Metrics
    public_url: str
    """Our base URL as the provider calls it; empty: what the request's Host header says."""

    @property
    def sink(self) -> Sink:
        """Where inbound messages and receipts go (the gateway must be running)."""

    def status_seen(self, outbox_id: str, sid: str) -> None:
        """A status callback named our row `outbox_id` and the provider's id `sid`."""


def webhook_endpoints(host: WebhookHost, *, auth_token: str) -> list[Endpoint]:
    """The two webhooks, signed with `auth_token`, for the HTTP layer to mount."""
    hooks = _Webhooks(host, auth_token)
    note = ("Signed by the provider (X-Twilio-Signature over gateway.public_url + path and the "
            "form fields); a bad or missing signature gets 403 and nothing is stored.")
    return [
        Endpoint("POST", "/webhooks/twilio/messages", hooks.message,
                 "An inbound SMS/MMS from the provider", statuses=(200, 403, 503),
                 content_type="text/xml",
                 description=note + " Answered (empty TwiML) once the message is committed; 503 "
                 "with Retry-After while the store cannot commit (the provider retries)."),
        Endpoint("POST", "/webhooks/twilio/status", hooks.status,
                 "A delivery status callback for one of our messages",
                 statuses=(204, 403, 503), content_type="text/plain",
                 description=note + " The query parameter `outbox` names our message."),
    ]


class _Webhooks:
    def __init__(self, host: WebhookHost, token: str):
        self.host = host
        self.metrics = host.metrics.webhooks
        self.token = token

    def _signed_fields(self, request: WebhookRequest, kind: str) -> dict[str, str] | None:
        """The form fields, if the request is signed; None after counting a refusal."""
        try:
            params = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            params = []
        url = self._url(request)
        if not valid_signature(self.token, url, params,
                               request.header("x-twilio-signature")):
            self.metrics.labels(kind, "forbidden").inc()
            log.warning("refused a %s webhook with %s signature (signed URL expected: %s; is "
                        "gateway.public_url right?)", kind,
                        "a wrong" if request.header("x-twilio-signature") else "no", url)
            return None
        return dict(params)

    def _url(self, request: WebhookRequest) -> str:
        """The URL the provider called: gateway.public_url, else what the request says."""
        base = self.host.public_url
        if not base:
            base = f"{request.scheme}://{request.header('host') or ''}"
        return f"{base}{request.path}{'?' + request.query if request.query else ''}"

    async def message(self, request: WebhookRequest) -> WebhookResponse:
        fields = self._signed_fields(request, "message")
        if fields is None:
            return refusal(403, _FORBIDDEN)
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        their = to_e164(fields.get("From", ""))
        ours = to_e164(fields.get("To", ""))
        if not sid or their is None or ours is None:
            self.metrics.labels("message", "invalid").inc()
            problem = ("MessageSid is missing" if not sid else
                       "From is not a phone number" if their is None else
                       "To is not a phone number")
            log.warning("refused an inbound webhook: %s", problem)
            return refusal(400, problem)
        count = min(_int(fields.get("NumMedia")), MAX_MEDIA)
        media = tuple(url for i in range(count) if (url := fields.get(f"MediaUrl{i}")))
        message = InboundMessage(gateway_id=sid, our_number=ours, their_number=their,
                                 text=fields.get("Body", ""), media=media)
        try:
            accepted = await self.host.sink.inbound(message)
        except StoreUnavailable as exc:  # the disk is full: the provider retries on a 5xx
            self.metrics.labels("message", "unavailable").inc()
            return refusal(503, str(exc), retry_after=exc.retry_after)
        self.metrics.labels("message", "duplicate" if accepted.duplicate else "ok").inc()
        if accepted.duplicate:
            log.debug("inbound %s from %s is a redelivery: dropped", sid, mask(their))
        return EMPTY_TWIML

    async def status(self, request: WebhookRequest) -> WebhookResponse:
        fields = self._signed_fields(request, "status")
        if fields is None:
            return refusal(403, _FORBIDDEN)
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        reported = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").lower()
        outbox = parse_qs(request.query).get("outbox", [None])[0]
        error_code = fields.get("ErrorCode") or None
        status = STATUSES.get(reported)
        if not sid or status is None:
            self.metrics.labels("status", "invalid").inc()
            return NO_CONTENT
        if outbox:
            self.host.status_seen(outbox, sid)
        if error_code == "21610":
            their = to_e164(fields.get("To", ""))
            if their is not None:
                await self.host.sink.carrier_opt_out(their)
        error = f"provider error {error_code}" if error_code and status == "failed" else None
        try:
            await self.host.sink.receipts(
                [DeliveryReceipt(gateway_id=sid, status=status, error=error,
                                 outbox_id=outbox)], wait=True)
        except StoreUnavailable as exc:
            self.metrics.labels("status", "unavailable").inc()
            return refusal(503, str(exc), retry_after=exc.retry_after)
        self.metrics.labels("status", "ok").inc()
        return NO_CONTENT


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0
