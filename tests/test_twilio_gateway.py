"""The Twilio gateway's REST side under a mock clock: rates, retries, lost answers, catch-up.

The provider is an `httpx.MockTransport` scripted per request, so MockClock time only moves
when every task waits (no sockets); the real-socket runs against `loadtest.fake_provider` are in
test_twilio_provider.py.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import Counter, deque
from email.utils import formatdate
from urllib.parse import parse_qs

import httpx
import pytest
import trio

from intercept.gateways import InboundMessage, OutboundMessage
from intercept.gateways.twilio import TwilioGateway, TwilioSettings
from intercept.server import Server

from helpers import OTHER_OUR, OUR, make_config, registry

SID = "AC" + "2" * 32
TOKEN = "t" * 32


class Scripted:
    """A provider answering POST Messages.json by a script of outcomes (then "ok")."""

    def __init__(self, *script: str):
        self.script = deque(script)
        self.messages: list[dict[str, str]] = []  # every message it created, newest last
        self.calls: list[tuple[float, str, str]] = []  # (trio time, action, From)
        self.by_outbox: Counter[str] = Counter()
        self.inbound: list[dict[str, str]] = []
        self.lists = 0
        self.visible_at: dict[str, float] = {}  # sid -> when the provider's list shows it
        self._sids = itertools.count(1)
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        assert path.startswith(f"/2010-04-01/Accounts/{SID}/")
        if request.method == "GET" and path.endswith("/Messages.json"):
            self.lists += 1
            query = dict(request.url.params)
            now = trio.current_time()
            found = [m for m in reversed(self.messages + self.inbound)
                     if all(m[k.lower()] == v for k, v in query.items() if k in ("To", "From"))
                     and self.visible_at.get(m["sid"], 0.0) <= now]
            return httpx.Response(200, json={"messages": found, "next_page_uri": None})
        if request.method == "GET" and path.endswith("/Media.json"):
            sid = path.split("/")[-2]
            return httpx.Response(200, json={"media_list": [
                {"sid": "ME1", "uri": f"/2010-04-01/Accounts/{SID}/Messages/{sid}/Media/ME1.json"}
            ]})
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        action = self.script.popleft() if self.script else "ok"
        self.calls.append((trio.current_time(), action, form["From"]))
        if action == "429":
            return httpx.Response(429, json={"code": 20429, "message": "Too Many Requests"})
        if action == "500":
            return httpx.Response(500, json={"code": 20500, "message": "Internal Server Error"})
        if action == "timeout":  # the request never got to create anything
            raise httpx.ReadTimeout("timed out", request=request)
        if action == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if action == "21610":
            return httpx.Response(400, json={"code": 21610, "message": "Attempt to send to "
                                             "unsubscribed recipient"})
        if action == "21211":
            return httpx.Response(400, json={"code": 21211, "message": "Invalid 'To' Phone "
                                             "Number"})
        message = {"sid": f"SM{next(self._sids):032d}", "to": form["To"], "from": form["From"],
                   "body": form["Body"], "direction": "outbound-api", "status": "queued",
                   "date_created": formatdate(time.time(), usegmt=True)}
        self.messages.append(message)
        outbox = parse_qs(form.get("StatusCallback", "?").split("?", 1)[1]).get("outbox", [""])
        self.by_outbox[outbox[0]] += 1
        if action == "late":  # still being created when we give up: listed 2 s later
            self.visible_at[message["sid"]] = trio.current_time() + 2.0
            raise httpx.ReadTimeout("timed out", request=request)
        if action == "lost":  # created, but the answer never arrives
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                            request=request)
        return httpx.Response(201, json=message)


def gateway(provider: Scripted, **settings) -> TwilioGateway:
    defaults = {"public_url": "https://intercept.example.org", "backoff_min": 0.5,
                "backoff_max": 8.0, "numbers": (OUR, OTHER_OUR)}
    return TwilioGateway(TwilioSettings(account_sid=SID, auth_token=TOKEN,
                                        api_url="https://api.twilio.test",
                                        **(defaults | settings)),
                         transport=provider.transport)


def query(tmp_path, sql: str, db: str = "g.db") -> list[tuple]:
    """Read the store of a server that has stopped."""
    connection = sqlite3.connect(tmp_path / db)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def server_with(tmp_path, gw: TwilioGateway, db: str = "g.db") -> Server:
    return Server(make_config(), registry=registry(), gateway=gw, store_path=tmp_path / db,
                  threaded_store=False)


async def text(server: Server, their: str, body: str, sid: str, our: str = OUR) -> None:
    ingested = await server.inbound(InboundMessage(gateway_id=sid, our_number=our,
                                                   their_number=their, text=body))
    await server.settled(ingested.conversation_id, ingested.conv_seq)


def buyer(i: int) -> str:
    return f"+1206555{i:04d}"


async def test_one_number_sends_at_most_its_rate(tmp_path, autojump_clock):
    provider = Scripted()
    server = server_with(tmp_path, gateway(provider, rate_per_number=1.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with trio.open_nursery() as buyers:
            for i in range(12):
                buyers.start_soon(text, server, buyer(i), "hi", f"in{i}")
            buyers.start_soon(text, server, buyer(99), "hi", "other", OTHER_OUR)
        server.stop()
    ours = sorted(t for t, _, sender in provider.calls if sender == OUR)
    assert len(ours) == 12
    gaps = [b - a for a, b in itertools.pairwise(ours)]
    assert min(gaps) >= 1.0 - 1e-3  # one per second from one long code
    assert max(gaps) < 1.5  # and no slower than needed
    other = [t for t, _, sender in provider.calls if sender == OTHER_OUR]
    assert other[0] < ours[2]  # another number is not held up behind the first
    assert sorted(provider.by_outbox.values()) == [1] * 13


async def test_429_and_5xx_are_retried_with_backoff(tmp_path, autojump_clock):
    provider = Scripted("429", "500", "500", "connect")
    server = server_with(tmp_path, gateway(provider, rate_per_number=100.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await text(server, buyer(1), "hi", "in1")
        server.stop()
    actions = [action for _, action, _ in provider.calls]
    assert actions == ["429", "500", "500", "connect", "ok"]
    times = [t for t, _, _ in provider.calls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # a 429 without Retry-After: a short jittered wait; then 0.5 s doubling, ±20 % jitter
    assert 0.2 - 1e-3 <= gaps[0] <= 0.8 + 0.01
    for gap, base in zip(gaps[1:], (0.5, 1.0, 2.0), strict=True):
        assert base * 0.8 - 1e-3 <= gap <= base * 1.2 + 0.01
    assert [m["body"] for m in provider.messages] == ["re: hi"]
    assert query(tmp_path, "SELECT status FROM outbox") == [("sent",)]
    assert server.metrics.registry.get_sample_value(
        "intercept_provider_requests_total", {"operation": "send", "result": "throttled"}) == 1


async def test_a_lost_answer_is_looked_up_not_resent(tmp_path, autojump_clock):
    provider = Scripted("lost", "timeout")
    server = server_with(tmp_path, gateway(provider))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await text(server, buyer(1), "one", "in1")  # created, answer lost: found in the list
        await text(server, buyer(2), "two", "in2")  # timed out, never created: sent again
        server.stop()
    assert provider.lists == 2
    assert sorted(m["body"] for m in provider.messages) == ["re: one", "re: two"]
    assert all(count == 1 for count in provider.by_outbox.values())
    rows = query(tmp_path, "SELECT body, status, gateway_id FROM outbox ORDER BY body")
    assert [(body, status) for body, status, _ in rows] == [("re: one", "sent"),
                                                          ("re: two", "sent")]
    assert {gid for _, _, gid in rows} == {m["sid"] for m in provider.messages}


async def test_an_identical_earlier_message_is_not_taken_for_the_lost_one(tmp_path,
                                                                         autojump_clock):
    """Only a message no other row owns can answer for a lost one."""
    provider = Scripted("ok", "timeout")
    server = server_with(tmp_path, gateway(provider))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await text(server, buyer(1), "same", "in1")
        await text(server, buyer(1), "same", "in2")  # same reply text; the first send is owned
        server.stop()
    assert [m["body"] for m in provider.messages] == ["re: same", "re: same"]
    assert query(tmp_path, "SELECT status FROM outbox") == [("sent",), ("sent",)]


async def test_a_lost_answer_that_cannot_be_checked_is_unknown_not_resent(tmp_path,
                                                                          autojump_clock):
    provider = Scripted("lost")
    original = provider.handle

    def no_listing(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(503, json={"code": 20503})
        return original(request)

    provider.transport = httpx.MockTransport(no_listing)
    server = server_with(tmp_path, gateway(provider))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await text(server, buyer(1), "hi", "in1")
        server.stop()
    assert len(provider.messages) == 1
    assert query(tmp_path, "SELECT status FROM outbox") == [("unknown",)]


async def test_21610_marks_the_number_opted_out(tmp_path, autojump_clock):
    provider = Scripted("21610", "21211")
    server = server_with(tmp_path, gateway(provider))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await text(server, buyer(1), "hi", "in1")
        await text(server, buyer(2), "hi", "in2")
        await text(server, buyer(1), "again", "in3")
        server.stop()
    assert query(tmp_path, "SELECT number, opted_out FROM opt_outs") == [(buyer(1), 1)]
    statuses = query(tmp_path, "SELECT their_number, status, error FROM outbox ORDER BY "
                                  "created_at, id")
    assert statuses[0][:2] == (buyer(1), "failed") and "21610" in statuses[0][2]
    assert statuses[1][:2] == (buyer(2), "failed") and "Invalid 'To'" in statuses[1][2]
    assert statuses[2][:2] == (buyer(1), "refused")
    assert provider.messages == []


async def test_a_restart_reconciles_rows_caught_mid_send(tmp_path, autojump_clock):
    provider = Scripted()
    server = server_with(tmp_path, gateway(provider))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await text(server, buyer(1), "one", "in1")
        await text(server, buyer(2), "two", "in2")
        server.stop()
    # As if the process died between marking 'sending' and recording the outcome, and the
    # second message never reached the provider:
    from intercept.store import connect

    db = connect(tmp_path / "g.db")
    db.execute("UPDATE outbox SET status = 'sending', gateway_id = NULL")
    db.conn.close()
    provider.messages = [m for m in provider.messages if m["body"] == "re: one"]
    restarted = server_with(tmp_path, gateway(provider))
    async with trio.open_nursery() as nursery:
        await nursery.start(restarted.run)
        await trio.sleep(5)
        restarted.stop()
    rows = query(tmp_path, "SELECT body, status, gateway_id FROM outbox ORDER BY body")
    assert [(b, s) for b, s, _ in rows] == [("re: one", "sent"), ("re: two", "sent")]
    assert [m["body"] for m in provider.messages] == ["re: one", "re: two"]
    assert rows[0][2] == provider.messages[0]["sid"]


async def test_catch_up_processes_missed_inbound_once(tmp_path, autojump_clock):
    provider = Scripted()
    now = formatdate(time.time(), usegmt=True)
    old = formatdate(time.time() - 7200, usegmt=True)
    provider.inbound = [
        {"sid": "SMold", "to": OUR, "from": buyer(1), "body": "too old", "direction": "inbound",
         "num_media": "0", "date_created": old, "date_sent": old},
        {"sid": "SMa", "to": OUR, "from": buyer(1), "body": "first", "direction": "inbound",
         "num_media": "0", "date_created": now, "date_sent": now},
        {"sid": "MMb", "to": OTHER_OUR, "from": buyer(2), "body": "", "direction": "inbound",
         "num_media": "1", "date_created": now, "date_sent": now},
    ]
    server = server_with(tmp_path, gateway(provider, catch_up=3600.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await trio.sleep(1)
        # a webhook for one of them arrives as well: still one row
        await server.inbound(InboundMessage(gateway_id="SMa", our_number=OUR,
                                            their_number=buyer(1), text="first"))
        await trio.sleep(1)
        server.stop()
    rows = query(tmp_path, "SELECT gateway_id, body, media FROM inbound ORDER BY seq")
    assert [r[0] for r in rows] == ["MMb", "SMa"] or [r[0] for r in rows] == ["SMa", "MMb"]
    media = dict((r[0], r[2]) for r in rows)["MMb"]
    assert media == f'["https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages/MMb/Media/ME1"]'
    assert sorted(m["body"] for m in provider.messages) == ["re: ", "re: first"]


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_keep_messages_queued(tmp_path, autojump_clock, status):
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"code": 20003, "message": "Authenticate"})

    provider = Scripted()
    provider.transport = httpx.MockTransport(refuse)
    server = server_with(tmp_path, gateway(provider))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await server.inbound(InboundMessage(gateway_id="in1", our_number=OUR,
                                            their_number=buyer(1), text="hi"))
        await trio.sleep(30)
        server.stop()
    assert query(tmp_path, "SELECT status FROM outbox") == [("queued",)]


def test_outbound_message_shape():
    message = OutboundMessage(outbox_id="1.2.0", our_number=OUR, their_number=buyer(1),
                              text="x")
    gw = gateway(Scripted())
    assert gw.status_callback_url(message.outbox_id) == (
        "https://intercept.example.org/webhooks/twilio/status?outbox=1.2.0")
    assert gw.media_credentials() == {"api.twilio.test": (SID, TOKEN)}


class Capped(Scripted):
    """A provider that answers 429 to a From sending faster than `per_second`, or at random."""

    def __init__(self, per_second: float = 0.0, sporadic: float = 0.0):
        super().__init__()
        self.gap = 1.0 / per_second if per_second else 0.0
        self.sporadic = sporadic
        self.last: dict[str, float] = {}
        self.chance = __import__("random").Random(3)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            now, sender = trio.current_time(), form["From"]
            if (self.gap and now - self.last.get(sender, -1e9) < self.gap) or (
                    self.chance.random() < self.sporadic):
                self.calls.append((now, "429", sender))
                return httpx.Response(429, json={"code": 20429, "message": "Too Many Requests"})
            self.last[sender] = now
        return super().handle(request)


async def _answer_buyers(tmp_path, provider: Scripted, count: int, **settings) -> Server:
    server = server_with(tmp_path, gateway(provider, **settings))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with trio.open_nursery() as buyers:
            for i in range(count):
                buyers.start_soon(text, server, buyer(i), "hi", f"in{i}")
        server.stop()
    return server


async def test_persistent_429s_teach_a_numbers_rate(tmp_path, autojump_clock):
    provider = Capped(per_second=2.0)
    server = await _answer_buyers(tmp_path, provider, 120, rate_per_number=20.0)
    sent = sorted(t for t, action, _ in provider.calls if action == "ok")
    assert len(sent) == 120
    throttled = [t for t, action, _ in provider.calls if action == "429"]
    last_third = sent[80]
    later = [t for t in throttled if t > last_third]
    assert len(later) < 0.3 * 40  # learned: few 429s once the limit is known
    learned = server.gateway._rates[OUR]
    assert learned.cuts >= 2  # the 20/s configured came down toward the 2/s allowed
    assert 40 / (sent[-1] - last_third) >= 0.6 * 2.0  # and it keeps sending near the cap


async def test_sporadic_429s_leave_a_numbers_rate_alone(tmp_path, autojump_clock):
    provider = Capped(sporadic=0.05)
    server = await _answer_buyers(tmp_path, provider, 200, rate_per_number=20.0)
    assert len([c for c in provider.calls if c[1] == "ok"]) == 200
    assert any(c[1] == "429" for c in provider.calls)
    assert server.gateway.slots.rate_of(OUR) == 20.0


async def test_a_message_the_provider_creates_after_our_timeout_is_found_not_resent(
        tmp_path, autojump_clock):
    provider = Scripted("late")
    server = server_with(tmp_path, gateway(provider, request_timeout=3.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await text(server, buyer(1), "hi", "in1")
        await trio.sleep(10)
        server.stop()
    assert len(provider.messages) == 1  # looked up after a wait: found, never sent twice
    assert query(tmp_path, "SELECT status, gateway_id FROM outbox") == [
        ("sent", provider.messages[0]["sid"])]
