"""The whole server against the fake Twilio provider over loopback sockets, faults included.

Webhooks come in signed from the fake; replies go out over REST to it while it answers 429s,
500s, hangs and drops connections after creating the message; status callbacks come back signed.
No message may be lost and none sent twice where the provider accepted it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import deque

import trio

from intercept.gateways.twilio import TwilioGateway, TwilioSettings
from intercept.server import Server
from loadtest.fake_provider import Callbacks, FakeTwilio, Faults

from helpers import OTHER_OUR, OUR, make_config, registry

SID = "AC" + "3" * 32
TOKEN = "s" * 32
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def start_server(tmp_path, fake: FakeTwilio, **config) -> Server:
    gateway = TwilioGateway(TwilioSettings(
        account_sid=SID, auth_token=TOKEN, api_url=fake.base_url, rate_per_number=1000.0,
        request_timeout=0.5, backoff_min=0.05, backoff_max=0.2, connections=8))
    return Server(make_config(http={"enabled": True, "listen": "127.0.0.1:0"}, **config),
                  registry=registry(), gateway=gateway, store_path=tmp_path / "p.db")


async def converse(fake: FakeTwilio, webhook: str, buyer: str, our: str, turns: int) -> None:
    """A buyer texts `turns` times, each time waiting for the reply to arrive at the fake."""
    for turn in range(turns):
        status, _ = await fake.send_inbound(webhook, from_=buyer, to=our, body=f"m{turn}")
        assert status == 200
        with trio.fail_after(30):
            while sum(1 for s in fake.sent if s.to == buyer) < turn + 1:
                await trio.sleep(0.01)


async def test_no_message_lost_or_sent_twice_through_faults(tmp_path):
    faults = Faults(script=deque(["429", "500", "hang", "drop", "ok", "drop", "hang", "500"]),
                    rate_429=0.1, rate_500=0.1, rate_drop=0.08, rate_hang=0.05, seed=7,
                    hang_seconds=5)
    fake = FakeTwilio(SID, TOKEN, faults=faults, callbacks=Callbacks(rate_duplicate=0.3,
                                                                    rate_reverse=0.3, seed=3))
    buyers = [f"+1206555{i:04d}" for i in range(16)]
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        server = start_server(tmp_path, fake)
        await nursery.start(server.run)
        webhook = f"{server.http_addresses[0]}/webhooks/twilio/messages"
        async with trio.open_nursery() as phones:
            for i, buyer in enumerate(buyers):
                phones.start_soon(converse, fake, webhook, buyer, (OUR, OTHER_OUR)[i % 2], 3)
        with trio.fail_after(30):  # the last status callbacks
            while server.store.query("SELECT count(*) FROM outbox WHERE status != "
                                     "'delivered'") != [(0,)]:
                await trio.sleep(0.02)
        rows = server.store.query("SELECT their_number, body, gateway_id FROM outbox")
        server.stop()
        nursery.cancel_scope.cancel()
    assert fake.faults_injected["drop"] >= 2 and fake.faults_injected["hang"] >= 2
    assert fake.faults_injected["429"] >= 1 and fake.faults_injected["500"] >= 2
    assert fake.duplicates() == {}  # no outbox row created twice at the provider
    for buyer in buyers:  # every buyer got every answer, in order
        assert [s.body for s in fake.sent if s.to == buyer] == ["re: m0", "re: m1", "re: m2"]
    assert len(rows) == 3 * len(buyers)
    assert {gid for _, _, gid in rows} == {s.sid for s in fake.sent}


async def test_a_photo_is_fetched_and_stored_by_its_hash(tmp_path):
    fake = FakeTwilio(SID, TOKEN, callbacks=Callbacks(enabled=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        server = start_server(tmp_path, fake, media={
            "allowed_hosts": ["127.0.0.1"], "allow_private_addresses": True,
            "dir": str(tmp_path / "media")})
        await nursery.start(server.run)
        webhook = f"{server.http_addresses[0]}/webhooks/twilio/messages"
        status, _ = await fake.send_inbound(webhook, from_="+12065550199", to=OUR, body="me",
                                            media=[("image/png", PNG)])
        assert status == 200
        with trio.fail_after(10):
            while server.store.query("SELECT status FROM media") != [("stored",)]:
                await trio.sleep(0.02)
        server.stop()
        nursery.cancel_scope.cancel()
    digest = hashlib.sha256(PNG).hexdigest()
    stored = tmp_path / "media" / digest[:2] / digest
    assert stored.read_bytes() == PNG
    db = sqlite3.connect(tmp_path / "p.db")
    row = db.execute("SELECT m.sha256, m.content_type, m.size, i.their_number FROM media m "
                     "JOIN inbound i ON i.seq = m.inbound_seq").fetchone()
    db.close()
    assert row == (digest, "image/png", len(PNG), "+12065550199")


async def test_catch_up_after_downtime_through_the_fake(tmp_path):
    fake = FakeTwilio(SID, TOKEN, callbacks=Callbacks(enabled=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        missed = fake.record_missed_inbound(from_="+12065550199", to=OUR, body="u there")
        gateway = TwilioGateway(TwilioSettings(
            account_sid=SID, auth_token=TOKEN, api_url=fake.base_url, catch_up=3600.0,
            numbers=(OUR, OTHER_OUR), request_timeout=2.0))
        server = Server(make_config(http={"enabled": True, "listen": "127.0.0.1:0"}),
                        registry=registry(), gateway=gateway, store_path=tmp_path / "c.db")
        await nursery.start(server.run)
        with trio.fail_after(10):
            while not fake.sent:
                await trio.sleep(0.02)
        webhook = f"{server.http_addresses[0]}/webhooks/twilio/messages"
        # the provider's own late retry of the same webhook changes nothing
        status, _ = await fake.send_inbound(webhook, from_="+12065550199", to=OUR,
                                            body="u there", message_sid=missed.sid)
        assert status == 200
        await trio.sleep(0.2)
        assert server.store.query("SELECT gateway_id FROM inbound") == [(missed.sid,)]
        server.stop()
        nursery.cancel_scope.cancel()
    assert [s.body for s in fake.sent] == ["re: u there"]
