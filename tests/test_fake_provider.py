"""The fake Twilio provider (loadtest/fake_provider.py) over loopback HTTP: API, faults, hooks."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from loadtest.fake_provider import (
    Callbacks,
    FakeTwilio,
    Faults,
    _from_args,
    _parse,
    segments,
)

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "fake-auth-token"
OUR = "+12065550100"
BUYER = "+12065550199"
OTHER = "+14045550123"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"


@dataclass
class Hook:
    """One request the receiver got: the URL as called, the form fields, the signature."""

    url: str
    params: list[tuple[str, str]]
    signature: str

    @property
    def fields(self) -> dict[str, str]:
        return dict(self.params)


@dataclass
class Receiver:
    """A tiny ASGI app standing in for our server's webhook endpoints."""

    status: int = 200
    hooks: list[Hook] = field(default_factory=list)
    base_url: str = ""

    async def app(self, scope: dict[str, Any], receive: Callable[..., Any],
                  send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while (event := await receive())["type"] != "lifespan.shutdown":
                await send({"type": event["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        query = scope["query_string"].decode()
        url = f"http://{headers['host']}{scope['path']}" + (f"?{query}" if query else "")
        self.hooks.append(Hook(url, parse_qsl(body.decode(), keep_blank_values=True),
                               headers.get("x-twilio-signature", "")))
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"text/xml")]})
        await send({"type": "http.response.body", "body": b"<Response></Response>"})

    def valid(self, hook: Hook) -> bool:
        return RequestValidator(TOKEN).validate(hook.url, hook.fields, hook.signature)


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[tuple[FakeTwilio, httpx.AsyncClient,
                                                         Receiver]]:
    """A serving fake, an authenticated client for it and a webhook receiver."""
    fake = FakeTwilio(SID, TOKEN, **options)
    receiver = Receiver()
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        binds = await nursery.start(partial(hypercorn_serve, receiver.app, config,
                                            shutdown_trigger=trio.sleep_forever))
        receiver.base_url = binds[0]
        async with httpx.AsyncClient(base_url=fake.base_url, auth=(SID, TOKEN),
                                     timeout=5) as client:
            yield fake, client, receiver
        nursery.cancel_scope.cancel()


async def until(predicate: Callable[[], bool]) -> None:
    with trio.fail_after(5):
        while not predicate():
            await trio.sleep(0.005)


async def create(client: httpx.AsyncClient, to: str = BUYER, body: str = "hello",
                 **extra: Any) -> httpx.Response:
    return await client.post(MESSAGES, data={"To": to, "From": OUR, "Body": body, **extra})


async def test_credentials_are_required() -> None:
    async with running() as (fake, client, _):
        anonymous = await client.post(MESSAGES, data={"To": BUYER, "From": OUR, "Body": "x"},
                                      auth=None)
        wrong = await client.get(MESSAGES, auth=(SID, "nope"))
        other_account = await client.get("/2010-04-01/Accounts/AC00/Messages.json")
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json()["code"] == 20003 and anonymous.json()["message"] == "Authenticate"
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert other_account.status_code == 404 and other_account.json()["code"] == 20404
    assert fake.sent == [] and fake.requests["unauthorized"] == 2


async def test_create_answers_201_with_the_message_resource() -> None:
    async with running() as (fake, client, receiver):
        callback = f"{receiver.base_url}/status?outbox=12.3.0"
        response = await create(client, StatusCallback=callback)
        message = response.json()
        fetched = await client.get(message["uri"])
        missing = await client.get(MESSAGES.replace(".json", "/SM00.json"))
    assert response.status_code == 201
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert {key: message[key] for key in ("to", "from", "body", "status", "direction",
                                          "account_sid", "api_version", "num_media",
                                          "num_segments", "price", "error_code")} == {
        "to": BUYER, "from": OUR, "body": "hello", "status": "queued",
        "direction": "outbound-api", "account_sid": SID, "api_version": "2010-04-01",
        "num_media": "0", "num_segments": "1", "price": None, "error_code": None}
    assert parsedate_to_datetime(message["date_created"]).utcoffset() is not None
    assert message["uri"] == MESSAGES.replace(".json", f"/{message['sid']}.json")
    assert message["subresource_uris"]["media"].endswith(f"/{message['sid']}/Media.json")
    assert fetched.status_code == 200 and fetched.json()["sid"] == message["sid"]
    assert missing.status_code == 404 and missing.json()["code"] == 20404
    record = fake.sent[0]
    assert (record.sid, record.to, record.from_, record.outbox_id) == (
        message["sid"], BUYER, OUR, "12.3.0")
    assert record.status_callback == callback
    assert fake.creations_by_outbox == {"12.3.0": 1} and len(fake.accepted_at[OUR]) == 1


async def test_invalid_and_opted_out_recipients_are_refused() -> None:
    async with running(opted_out={OTHER}) as (fake, client, _):
        no_to = await client.post(MESSAGES, data={"From": OUR, "Body": "x"})
        bad_to = await create(client, to="12345")
        opted_out = await create(client, to=OTHER)
    assert no_to.status_code == bad_to.status_code == opted_out.status_code == 400
    assert no_to.json()["code"] == bad_to.json()["code"] == 21211
    assert opted_out.json()["code"] == 21610
    assert opted_out.json()["message"] == "Attempt to send to unsubscribed recipient"
    assert fake.sent == [] and fake.messages == {}


async def test_scripted_429_and_500_create_nothing() -> None:
    faults = Faults(script=deque(["429", "500"]), retry_after=3)
    async with running(faults=faults) as (fake, client, _):
        throttled = await create(client, StatusCallback="http://127.0.0.1:9/s?outbox=1.1.0")
        failed = await create(client, StatusCallback="http://127.0.0.1:9/s?outbox=1.1.0")
        ok = await create(client, StatusCallback="http://127.0.0.1:9/s?outbox=1.1.0")
    assert (throttled.status_code, throttled.json()["code"]) == (429, 20429)
    assert throttled.headers["retry-after"] == "3"
    assert (failed.status_code, failed.json()["code"]) == (500, 20500)
    assert ok.status_code == 201 and len(fake.sent) == 1
    assert fake.creations_by_outbox == {"1.1.0": 1}
    assert fake.faults_injected == {"429": 1, "500": 1}


async def test_drop_creates_the_message_but_never_answers() -> None:
    async with running(faults=Faults(script=deque(["drop"]))) as (fake, client, receiver):
        callback = f"{receiver.base_url}/status?outbox=4.1.0"
        with pytest.raises(httpx.RemoteProtocolError):
            await create(client, StatusCallback=callback)
        await until(lambda: len(receiver.hooks) == 2)
        again = await create(client, StatusCallback=callback)
    assert again.status_code == 201
    assert fake.faults_injected == {"drop": 1}
    assert fake.duplicates() == {"4.1.0": 2}
    assert receiver.hooks[0].fields["MessageSid"] == fake.sent[0].sid


async def test_hang_holds_the_request_and_creates_nothing() -> None:
    async with running(faults=Faults(script=deque(["hang"]))) as (fake, client, _):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(MESSAGES, data={"To": BUYER, "From": OUR, "Body": "x"},
                              timeout=0.3)
        assert fake.sent == [] and fake.faults_injected == {"hang": 1}
        after = await create(client)
    assert after.status_code == 201 and len(fake.sent) == 1


async def test_hang_seconds_closes_the_connection() -> None:
    faults = Faults(script=deque(["hang"]), hang_seconds=0.05)
    async with running(faults=faults) as (fake, client, _):
        with pytest.raises(httpx.RemoteProtocolError):
            await create(client)
    assert fake.sent == []


async def test_keep_alive_and_concurrent_connections() -> None:
    async with running() as (fake, client, _):
        for _ in range(3):
            assert (await create(client)).status_code == 201
        assert fake.connections == 1
        async with trio.open_nursery() as nursery:
            for index in range(10):
                nursery.start_soon(partial(create, client, body=f"n{index}"))
    assert len(fake.sent) == 13
    assert {record.body for record in fake.sent[3:]} == {f"n{index}" for index in range(10)}
    assert fake.connections > 1


async def test_per_from_interval_answers_429() -> None:
    async with running(faults=Faults(per_from_interval=60)) as (fake, client, _):
        first = await create(client)
        second = await create(client)
        other = await client.post(MESSAGES, data={"To": BUYER, "From": OTHER, "Body": "x"})
    assert (first.status_code, second.status_code, other.status_code) == (201, 429, 201)
    assert len(fake.accepted_at[OUR]) == 1 and fake.faults_injected["per_from_rate"] == 1


async def test_list_filters_and_pages_newest_first() -> None:
    async with running() as (fake, client, _):
        for index in range(5):
            await create(client, to=BUYER if index % 2 else OTHER, body=f"out {index}")
        fake.record_missed_inbound(from_=BUYER, to=OUR, body="in 1")
        fake.record_missed_inbound(from_=BUYER, to=OUR, body="in 2")
        pages, uri = [], f"{MESSAGES}?PageSize=3"
        while uri:
            page = (await client.get(uri)).json()
            pages.append(page)
            uri = page["next_page_uri"]
        back = (await client.get(pages[1]["previous_page_uri"])).json()
        today = parsedate_to_datetime(pages[0]["messages"][0]["date_sent"]).date().isoformat()

        async def bodies(**query: str) -> list[str]:
            listed = (await client.get(MESSAGES, params=query)).json()
            return [message["body"] for message in listed["messages"]]

        to_buyer = await bodies(To=BUYER)
        inbound = await bodies(From=BUYER)
        on_day = await bodies(DateSent=today)
        before = await bodies(**{"DateSent<": "2000-01-01"})
        after = await bodies(**{"DateSent>": today})
    listed = [message["body"] for page in pages for message in page["messages"]]
    assert listed == ["in 2", "in 1", "out 4", "out 3", "out 2", "out 1", "out 0"]
    assert [len(page["messages"]) for page in pages] == [3, 3, 1]
    assert [(page["page"], page["start"], page["end"]) for page in pages] == [
        (0, 0, 2), (1, 3, 5), (2, 6, 6)]
    assert pages[0]["previous_page_uri"] is None and pages[0]["page_size"] == 3
    assert pages[0]["first_page_uri"].startswith(MESSAGES)
    assert [m["body"] for m in back["messages"]] == ["in 2", "in 1", "out 4"]
    assert pages[0]["messages"][0]["direction"] == "inbound"
    assert to_buyer == ["out 3", "out 1"] and inbound == ["in 2", "in 1"]
    assert len(on_day) == 7 and before == [] and len(after) == 7


async def test_media_list_and_content_need_credentials() -> None:
    async with running() as (fake, client, _):
        message = fake.record_missed_inbound(from_=BUYER, to=OUR, body="look",
                                             media=[("image/jpeg", b"\xff\xd8jpeg")])
        listing = (await client.get(MESSAGES.replace(".json", f"/{message.sid}/Media.json")))
        item = listing.json()["media_list"][0]
        content = await client.get(item["uri"].removesuffix(".json"))
        anonymous = await client.get(item["uri"].removesuffix(".json"), auth=None)
    assert message.sid.startswith("MM") and listing.status_code == 200
    assert re.fullmatch(r"ME[0-9a-f]{32}", item["sid"])
    assert (item["parent_sid"], item["account_sid"], item["content_type"]) == (
        message.sid, SID, "image/jpeg")
    assert listing.json()["next_page_uri"] is None
    assert content.content == b"\xff\xd8jpeg"
    assert content.headers["content-type"] == "image/jpeg"
    assert anonymous.status_code == 401


async def test_media_without_auth_when_configured() -> None:
    async with running(media_auth=False) as (fake, client, _):
        message = fake.record_missed_inbound(from_=BUYER, to=OUR, body="",
                                             media=[("image/png", b"png")])
        url = fake.media_url(message.media[0])
        content = await client.get(url, auth=None)
        listing = await client.get(MESSAGES.replace(".json", f"/{message.sid}/Media.json"),
                                   auth=None)
    assert content.content == b"png" and listing.status_code == 401


async def test_status_callbacks_are_signed_and_in_order() -> None:
    async with running() as (fake, client, receiver):
        callback = f"{receiver.base_url}/status?outbox=12.3.0"
        sid = (await create(client, StatusCallback=callback)).json()["sid"]
        await until(lambda: len(receiver.hooks) == 2)
        resource = (await client.get(MESSAGES.replace(".json", f"/{sid}.json"))).json()
    assert [hook.fields["MessageStatus"] for hook in receiver.hooks] == ["sent", "delivered"]
    first = receiver.hooks[0]
    assert first.url == callback and receiver.valid(first) and receiver.valid(receiver.hooks[1])
    assert first.fields == {"MessageSid": sid, "SmsSid": sid, "MessageStatus": "sent",
                            "SmsStatus": "sent", "AccountSid": SID, "From": OUR, "To": BUYER,
                            "ApiVersion": "2010-04-01"}
    assert resource["status"] == "delivered" and resource["date_sent"] is not None
    assert fake.callbacks_posted == 2 and fake.callback_failures == 0


async def test_undelivered_duplicated_and_reversed_callbacks() -> None:
    callbacks = Callbacks(undelivered={BUYER}, rate_duplicate=1.0, rate_reverse=1.0)
    async with running(callbacks=callbacks) as (fake, client, receiver):
        sid = (await create(client, StatusCallback=f"{receiver.base_url}/s?outbox=1.2.0")
               ).json()["sid"]
        await until(lambda: len(receiver.hooks) == 4)
    statuses = [hook.fields["MessageStatus"] for hook in receiver.hooks]
    assert statuses == ["undelivered", "undelivered", "sent", "sent"]
    assert receiver.hooks[0].fields["ErrorCode"] == "30003"
    assert "ErrorCode" not in receiver.hooks[2].fields
    assert all(receiver.valid(hook) for hook in receiver.hooks)
    assert (fake.messages[sid].status, fake.messages[sid].error_code) == ("undelivered", 30003)


async def test_callback_failures_are_counted() -> None:
    async with running() as (fake, client, receiver):
        receiver.status = 500
        await create(client, StatusCallback=f"{receiver.base_url}/s?outbox=1.0.0")
        await create(client, to=OTHER, StatusCallback="http://127.0.0.1:9/s?outbox=2.0.0")
        await until(lambda: fake.callbacks_posted == 4)
        assert (await create(client)).status_code == 201
    assert fake.callback_failures == 4


async def test_send_inbound_posts_a_signed_webhook() -> None:
    async with running() as (fake, client, receiver):
        url = f"{receiver.base_url}/webhooks/twilio/messages"
        status, body = await fake.send_inbound(url, from_=BUYER, to=OUR, body="hi 👋",
                                               media=[("image/jpeg", b"jpeg")])
        hook = receiver.hooks[0]
        sid = hook.fields["MessageSid"]
        again = await fake.send_inbound(url, from_=BUYER, to=OUR, body="hi 👋",
                                        message_sid=sid)
        image = await client.get(hook.fields["MediaUrl0"])
    assert (status, body) == (200, b"<Response></Response>") and again[0] == 200
    assert hook.url == url and receiver.valid(hook)
    fields = hook.fields
    assert sid.startswith("MM") and fields["SmsMessageSid"] == fields["SmsSid"] == sid
    assert (fields["From"], fields["To"], fields["Body"]) == (BUYER, OUR, "hi 👋")
    assert (fields["NumMedia"], fields["NumSegments"], fields["SmsStatus"]) == ("1", "1",
                                                                                "received")
    assert fields["MediaContentType0"] == "image/jpeg" and fields["AccountSid"] == SID
    assert fields["FromCountry"] == "US" and "MessagingServiceSid" not in fields
    assert urlsplit(fields["MediaUrl0"]).path.startswith(f"/2010-04-01/Accounts/{SID}/")
    assert image.content == b"jpeg"
    assert receiver.hooks[1].fields["MessageSid"] == sid and len(fake.messages) == 1


async def test_serve_stops_cleanly_when_cancelled() -> None:
    fake = FakeTwilio(SID, TOKEN)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(fake.serve)
        async with httpx.AsyncClient(auth=(SID, TOKEN)) as client:
            await client.get(f"{fake.base_url}{MESSAGES}")  # leaves a kept-alive connection
        nursery.cancel_scope.cancel()
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)


def test_faults_are_seeded_and_checked() -> None:
    def draws(seed: int) -> list[str]:
        faults = Faults(rate_429=0.2, rate_500=0.2, rate_hang=0.2, rate_drop=0.2, seed=seed)
        return [faults.next() for _ in range(50)]

    assert draws(1) == draws(1) != draws(2)
    assert set(draws(1)) == {"429", "500", "hang", "drop", "ok"}
    scripted = Faults(rate_500=1.0, script=deque(["ok", "drop"]))
    assert [scripted.next() for _ in range(3)] == ["ok", "drop", "500"]
    with pytest.raises(ValueError):
        Faults(script=deque(["503"]))


def test_segments() -> None:
    assert [segments(""), segments("a" * 160), segments("a" * 161), segments("é" * 70)] == [
        1, 1, 2, 1]
    assert [segments("ж" * 70), segments("ж" * 71), segments("[" * 80)] == [1, 2, 1]
    assert segments("[" * 81) == 2


def test_command_line_builds_the_fake() -> None:
    args = _parse(["--listen", "127.0.0.1:0", "--account-sid", SID, "--auth-token", TOKEN,
                   "--fault-429", "0.1", "--fault-drop", "0.05", "--seed", "7",
                   "--no-callbacks"])
    fake = _from_args(args)
    assert args.listen == ("127.0.0.1", 0)
    assert (fake.faults.rate_429, fake.faults.rate_drop, fake.faults.seed) == (0.1, 0.05, 7)
    assert not fake.callbacks.enabled
    fake.creations_by_outbox.update({"9.1.0": 2, "9.2.0": 1})
    assert "duplicates by outbox id: 1 ids, 1 extra creations" in fake.summary()
    with pytest.raises(SystemExit):
        _parse(["--account-sid", SID, "--auth-token", TOKEN, "--fault-500", "2"])


async def test_the_official_twilio_client_understands_the_fake() -> None:
    def use(base_url: str) -> tuple[str, list[str]]:
        twilio = Client(SID, TOKEN)
        twilio.api.base_url = base_url
        for index in range(3):
            twilio.messages.create(to=BUYER, from_=OUR, body=f"x{index}")
        listed = twilio.messages.list(to=BUYER, page_size=2)
        return twilio.messages(listed[0].sid).fetch().body, [m.body for m in listed]

    async with running() as (fake, _, _):
        fetched, listed = await trio.to_thread.run_sync(use, fake.base_url)
    assert (fetched, listed) == ("x2", ["x2", "x1", "x0"])
    assert fake.requests["messages.list"] == 2
