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
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, parse_qsl

from ...foundation.phone import mask, to_e164
from ...http.routing import Request, Response, Route, error_response, unavailable_response
from ...store import StoreUnavailable
from ..base import DeliveryReceipt, InboundMessage
from .signature import valid_signature

if TYPE_CHECKING:
    from .client import TwilioGateway

log = logging.getLogger(__name__)

EMPTY_TWIML = Response(200, b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>',
                       b"text/xml; charset=utf-8")

# Twilio's message statuses -> ours. Queued, accepted and the like mean the provider has it.
STATUSES = {
    "accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent",
    "sent": "sent", "delivered": "delivered", "read": "delivered",
    "undelivered": "failed", "failed": "failed", "canceled": "failed",
}
MAX_MEDIA = 10
_FORBIDDEN = ("the X-Twilio-Signature header is missing or does not sign this request (the "
              "signed URL is gateway.public_url + the path; the key is the auth token)")


def webhook_routes(gateway: TwilioGateway) -> list[Route]:
    hooks = _Webhooks(gateway)
    tags = ("webhooks",)
    note = ("Signed by the provider (X-Twilio-Signature over gateway.public_url + path and the "
            "form fields); a bad or missing signature gets 403 and nothing is stored.")
    return [
        Route("POST", "/webhooks/twilio/messages", hooks.message,
              "An inbound SMS/MMS from the provider", responses={200: None, 403: None, 503: None},
              content_type="text/xml", tags=tags,
              description=note + " Answered (empty TwiML) once the message is committed; 503 "
              "with Retry-After while the store cannot commit (the provider retries)."),
        Route("POST", "/webhooks/twilio/status", hooks.status,
              "A delivery status callback for one of our messages",
              responses={204: None, 403: None, 503: None}, content_type="text/plain", tags=tags,
              description=note + " The query parameter `outbox` names our message."),
    ]


class _Webhooks:
    def __init__(self, gateway: TwilioGateway):
        self.gateway = gateway
        self.metrics = gateway.metrics.webhooks
        self.token = gateway.settings.auth_token

    def _signed_fields(self, request: Request, kind: str) -> dict[str, str] | None:
        """The form fields, if the request is signed; None after counting a refusal."""
        try:
            params = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            params = []
        url = self._url(request)
        if not valid_signature(self.token, url, params,
                               request.header(b"x-twilio-signature")):
            self.metrics.labels(kind, "forbidden").inc()
            log.warning("refused a %s webhook with %s signature (signed URL expected: %s; is "
                        "gateway.public_url right?)", kind,
                        "a wrong" if request.header(b"x-twilio-signature") else "no", url)
            return None
        return dict(params)

    def _url(self, request: Request) -> str:
        """The URL the provider called: gateway.public_url, else what the request says."""
        scope = request.scope
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        query = scope.get("query_string", b"").decode("latin-1")
        base = self.gateway.public_url
        if not base:
            host = request.header(b"host") or ""
            base = f"{scope.get('scheme', 'http')}://{host}"
        return f"{base}{path}{'?' + query if query else ''}"

    async def message(self, request: Request) -> Response:
        fields = self._signed_fields(request, "message")
        if fields is None:
            return error_response(403, _FORBIDDEN)
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        their = to_e164(fields.get("From", ""))
        ours = to_e164(fields.get("To", ""))
        if not sid or their is None or ours is None:
            self.metrics.labels("message", "invalid").inc()
            problem = ("MessageSid is missing" if not sid else
                       "From is not a phone number" if their is None else
                       "To is not a phone number")
            log.warning("refused an inbound webhook: %s", problem)
            return error_response(400, problem)
        count = min(_int(fields.get("NumMedia")), MAX_MEDIA)
        media = tuple(url for i in range(count) if (url := fields.get(f"MediaUrl{i}")))
        message = InboundMessage(gateway_id=sid, our_number=ours, their_number=their,
                                 text=fields.get("Body", ""), media=media)
        try:
            ingested = await self.gateway.sink.inbound(message)
        except StoreUnavailable as exc:  # the disk is full: the provider retries on a 5xx
            self.metrics.labels("message", "unavailable").inc()
            return unavailable_response(str(exc), exc.retry_after)
        self.metrics.labels("message", "duplicate" if ingested.duplicate else "ok").inc()
        if ingested.duplicate:
            log.debug("inbound %s from %s is a redelivery: dropped", sid, mask(their))
        return EMPTY_TWIML

    async def status(self, request: Request) -> Response:
        fields = self._signed_fields(request, "status")
        if fields is None:
            return error_response(403, _FORBIDDEN)
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        reported = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").lower()
        outbox = parse_qs(request.scope.get("query_string", b"").decode("latin-1")).get(
            "outbox", [None])[0]
        error_code = fields.get("ErrorCode") or None
        status = STATUSES.get(reported)
        if not sid or status is None:
            self.metrics.labels("status", "invalid").inc()
            return Response(204, b"", b"text/plain")
        if outbox:
            self.gateway.status_seen(outbox, sid)
        if error_code == "21610":
            their = to_e164(fields.get("To", ""))
            if their is not None:
                await self.gateway.sink.carrier_opt_out(their)
        error = f"provider error {error_code}" if error_code and status == "failed" else None
        try:
            await self.gateway.sink.receipts(
                [DeliveryReceipt(gateway_id=sid, status=status, error=error,
                                 outbox_id=outbox)], wait=True)
        except StoreUnavailable as exc:
            self.metrics.labels("status", "unavailable").inc()
            return unavailable_response(str(exc), exc.retry_after)
        self.metrics.labels("status", "ok").inc()
        return Response(204, b"", b"text/plain")


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0
