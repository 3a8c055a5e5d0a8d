"""intercept/transport.py: the gateway interface's types, the sink's `Accepted`, and webhooks as
`Endpoint` data that http/routing.py mounts."""

from __future__ import annotations

import json

import msgspec
import pytest

from intercept.gateways import base
from intercept.gateways.twilio import TwilioGateway, TwilioSettings
from intercept.http.openapi import openapi
from intercept.http.routing import Request, RouteTable, endpoint_route
from intercept.store import Ingested
from intercept.transport import (
    Accepted,
    DeliveryReceipt,
    Endpoint,
    Gateway,
    InboundMessage,
    OutboundMessage,
    WebhookRequest,
    WebhookResponse,
    refusal,
)

from helpers import OUR, running

BUYER = "+12065550199"


def test_decoded_messages_refuse_unknown_fields_and_stay_frozen():
    raw = {"gateway_id": "g1", "our_number": OUR, "their_number": BUYER, "text": "hi"}
    message = msgspec.json.decode(json.dumps(raw), type=InboundMessage)
    assert message.media == ()
    with pytest.raises(msgspec.ValidationError, match="unknown field `txt`"):
        msgspec.json.decode(json.dumps({**raw, "txt": "hi"}), type=InboundMessage)
    with pytest.raises(msgspec.ValidationError, match="Invalid enum value 'lost'"):
        msgspec.convert({"gateway_id": "g1", "status": "lost"}, DeliveryReceipt)
    with pytest.raises(AttributeError):
        message.text = "changed"  # type: ignore[misc]


def test_gateways_base_re_exports_the_transport_types():
    assert base.Gateway is Gateway and base.Accepted is Accepted
    assert base.Endpoint is Endpoint and base.WebhookRequest is WebhookRequest


class Minimal(Gateway):
    async def run(self, sink, *, task_status=None):  # pragma: no cover - not run
        raise NotImplementedError

    async def submit(self, message: OutboundMessage) -> str:
        return "id-1"


async def test_a_gateway_serves_no_webhooks_unless_it_says_so():
    gateway = Minimal()
    assert gateway.endpoints() == []
    assert gateway.media_credentials() == {}
    assert gateway.may_have_sent("1.1.0") is True
    message = OutboundMessage("1.1.0", OUR, BUYER, "hello")
    assert await gateway.reconcile(message, since=0.0) is None


def test_a_webhook_request_finds_its_headers_in_any_case():
    request = WebhookRequest("POST", "/hook", "", (("host", "a.example"), ("x-sig", "one"),
                                                   ("x-sig", "two")), b"")
    assert request.header("X-Sig") == "one"
    assert request.header("HOST") == "a.example"
    assert request.header("x-missing") is None


def test_a_refusal_is_a_json_sentence_with_retry_after_in_whole_seconds():
    plain = refusal(403, "the signature is wrong")
    assert (plain.status, plain.content_type, plain.headers) == (403, "application/json", ())
    assert json.loads(plain.body) == {"error": "the signature is wrong"}
    assert refusal(503, "disk full", retry_after=2.6).headers == (("retry-after", "3"),)
    assert refusal(503, "disk full", retry_after=0.2).headers == (("retry-after", "1"),)


async def test_an_endpoint_becomes_a_route_that_passes_the_request_as_it_came():
    seen: list[WebhookRequest] = []

    async def hook(request: WebhookRequest) -> WebhookResponse:
        seen.append(request)
        return WebhookResponse(202, b"<ok/>", "text/xml", (("x-answer", "yes"),))

    endpoint = Endpoint("POST", "/webhooks/test", hook, "A test hook", description="Signed.",
                        statuses=(202, 403), content_type="text/xml")
    route = endpoint_route(endpoint)
    assert (route.method, route.path, route.summary, route.description) == (
        "POST", "/webhooks/test", "A test hook", "Signed.")
    assert (route.role, route.audit, route.tags) == (None, False, ("webhooks",))
    assert route.responses == {202: None, 403: None} and route.content_type == "text/xml"
    assert route.handler.__name__ == "hook"  # the OpenAPI operationId

    found = RouteTable([route]).match("POST", "/webhooks/test")
    assert not isinstance(found, list) and found is not None
    scope = {"method": "POST", "path": "/webhooks/test", "raw_path": b"/webhooks/te%73t",
             "query_string": b"outbox=1.2.0&x=%20", "scheme": "https",
             "headers": [(b"Host", b"intercept.example.org"), (b"X-Twilio-Signature", b"s")]}
    response = await found[0].handler(Request("POST", "/webhooks/test", scope, b"a=1", {}, None))
    (request,) = seen
    assert request == WebhookRequest(
        "POST", "/webhooks/te%73t", "outbox=1.2.0&x=%20",
        (("host", "intercept.example.org"), ("x-twilio-signature", "s")), b"a=1", "https")
    assert (response.status, response.body, response.content_type) == (202, b"<ok/>",
                                                                         b"text/xml")
    assert response.headers == [(b"x-answer", b"yes")]


async def test_without_raw_path_or_scheme_the_route_uses_the_path_and_http():
    seen: list[WebhookRequest] = []

    async def hook(request: WebhookRequest) -> WebhookResponse:
        seen.append(request)
        return WebhookResponse(204)

    route = endpoint_route(Endpoint("POST", "/h", hook, "h"))
    await route.handler(Request("POST", "/h", {"path": "/h"}, b"", {}, None))
    assert seen == [WebhookRequest("POST", "/h", "", (), b"", "http")]


def test_the_twilio_webhooks_are_endpoints_described_as_before():
    gateway = TwilioGateway(TwilioSettings(account_sid="AC1", auth_token="t"))
    endpoints = gateway.endpoints()
    assert [(e.method, e.path, e.statuses, e.content_type) for e in endpoints] == [
        ("POST", "/webhooks/twilio/messages", (200, 403, 503), "text/xml"),
        ("POST", "/webhooks/twilio/status", (204, 403, 503), "text/plain"),
    ]
    paths = openapi([endpoint_route(e) for e in endpoints])["paths"]
    message = paths["/webhooks/twilio/messages"]["post"]
    assert message["operationId"] == "message" and message["tags"] == ["webhooks"]
    assert set(message["responses"]) == {"200", "403", "503"}
    assert message["responses"]["200"]["content"] == {"text/xml": {"schema": {"type": "string"}}}
    assert paths["/webhooks/twilio/status"]["post"]["operationId"] == "status"


async def test_the_server_answers_the_gateway_with_accepted_not_the_stores_type(
        tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _phones):
        first = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hi",
                                            gateway_id="gw-1")
        again = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hi",
                                            gateway_id="gw-1")
        (batch,) = await server.inbound_many([InboundMessage("gw-2", OUR, BUYER, "more")])
        await server.settled(batch.conversation_id, batch.conv_seq)
    for answer in (first, again, batch):
        assert type(answer) is Accepted and not isinstance(answer, Ingested)
    assert first == Accepted(first.conversation_id, 1, duplicate=False)
    assert again == Accepted(first.conversation_id, 1, duplicate=True)
    assert batch == Accepted(first.conversation_id, 2, duplicate=False)
