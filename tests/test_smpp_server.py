"""The real `Server` over one SMPP bind to the simulated SMSC: scale, faults, receipts."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from intercept.gateways.smpp.client import SmppGateway
from intercept.server import Server
from loadtest.smsc import Smsc

from helpers import OTHER_OUR, OUR, make_config, registry

LINES = ("hey", "how much", "tonight? 😀")


@asynccontextmanager
async def smpp_server(tmp_path: Path, smsc: Smsc | None = None, *, config: Any = None,
                      **options: Any) -> AsyncIterator[tuple[Server, Smsc, SmppGateway]]:
    smsc = smsc or Smsc()
    gateway = SmppGateway(connect=smsc.connect, system_id="intercept", password="secret",
                          wall_clock=lambda: 1.7e9 + trio.current_time(), **options)
    server = Server(config or make_config(runtime={"hibernate_after": "1h"}),
                    registry=registry(), gateway=gateway, store_path=tmp_path / "smpp.db",
                    threaded_store=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(smsc.run)
        await nursery.start(server.run)
        yield server, smsc, gateway
        server.stop()
        nursery.cancel_scope.cancel()


def buyer_number(i: int) -> str:
    return f"+1{300 + i // 10_000:03d}555{i % 10_000:04d}"


async def converse(smsc: Smsc, count: int, lines: tuple[str, ...] = LINES) -> None:
    """Each buyer texts a line and waits for the reply before the next, like a person."""

    async def buyer(i: int) -> None:
        their = buyer_number(i)
        ours = OUR if i % 2 else OTHER_OUR
        for turn, line in enumerate(lines):
            smsc.deliver_nowait(their, ours, f"{line} #{i}")
            await smsc.wait_for(their, turn + 1)

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(buyer, i)


def assert_in_order(smsc: Smsc, count: int, lines: tuple[str, ...] = LINES) -> None:
    for i in range(count):
        their = buyer_number(i)
        assert smsc.phones[their] == [f"re: {line} #{i}" for line in lines], their


def repeats_were_unanswered(smsc: Smsc) -> int:
    """Collapse a reply received twice in a row when the SMSC accepted the first copy without
    its submit_sm_resp reaching us (the documented at-least-once edge); return how many."""
    seen: dict[tuple[str, str], str] = {}
    repeats = 0
    for mt in smsc.messages:
        key = (mt.destination, mt.text)
        if key in seen:
            assert seen[key] not in smsc.answered, f"{key} was answered, then sent again"
            texts = smsc.phones[mt.destination]  # the later copy is the repeat
            del texts[len(texts) - 1 - texts[::-1].index(mt.text)]
            repeats += 1
        seen[key] = mt.message_ids[0]
    return repeats


@pytest.mark.slow
async def test_ten_thousand_conversations_over_one_bind(tmp_path, autojump_clock):
    count = 10_000
    async with smpp_server(tmp_path) as (server, smsc, _gateway):
        await converse(smsc, count)
        assert smsc.binds == 1
        assert_in_order(smsc, count)
        assert len(smsc.messages) == count * len(LINES)  # none lost, none twice
        assert len(server.router.actors) == count
        await trio.sleep(5)  # the last receipts
        rows = server.store.query("SELECT status, count(*) FROM outbox GROUP BY status")
        assert rows == [("delivered", count * len(LINES))]
        inbound = server.store.query("SELECT count(*), count(DISTINCT gateway_id) FROM inbound")
        assert inbound == [(count * len(LINES), count * len(LINES))]


async def test_dropped_connections_mid_traffic_lose_nothing(tmp_path, autojump_clock):
    count = 300
    async with smpp_server(tmp_path) as (server, smsc, _gateway):

        async def faults() -> None:
            await smsc.wait_total(100)
            smsc.drop_on_submit("before_accept", after=20)
            await smsc.wait_total(300)
            smsc.drop_connections()  # MO and submits in flight
            await smsc.wait_total(500)
            smsc.drop_on_submit("after_resp", after=20)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(faults)
            await converse(smsc, count)
        await trio.sleep(1)  # the last answers are written
        assert smsc.binds == 4
        repeats = repeats_were_unanswered(smsc)
        assert_in_order(smsc, count)
        assert len(smsc.messages) == count * len(LINES) + repeats
        assert server.store.query("SELECT count(*) FROM inbound") == [(count * len(LINES),)]


async def test_a_lost_submit_response_is_the_one_reply_sent_twice(tmp_path, autojump_clock):
    async with smpp_server(tmp_path) as (_server, smsc, _gateway):
        smsc.drop_on_submit("before_resp", after=20)
        await converse(smsc, 50, LINES[:1])
        await trio.sleep(1)  # the last answers are written
        texts = Counter(mt.text for mt in smsc.messages)
        assert sum(texts.values()) == 51  # at-least-once: the accepted, unanswered one again
        assert [n for n in texts.values() if n > 1] == [2]
        answered = Counter(mt.text for mt in smsc.messages if mt.message_ids[0] in smsc.answered)
        assert set(answered.values()) == {1}  # what the SMSC answered was never resent
        assert set(answered) == set(texts)


async def test_a_duplicate_deliver_sm_is_processed_once(tmp_path, autojump_clock):
    async with smpp_server(tmp_path) as (server, smsc, _gateway):
        smsc.duplicate_mo = 1
        await smsc.deliver("+12065550199", OUR, "hello?")
        await smsc.wait_for("+12065550199", 1)
        await trio.sleep(10)
        assert smsc.phones["+12065550199"] == ["re: hello?"]
        assert server.store.query("SELECT count(*) FROM inbound") == [(1,)]


async def test_throttling_through_the_server_delivers_everything(tmp_path, autojump_clock):
    smsc = Smsc(max_rate=200)
    async with smpp_server(tmp_path, smsc) as (_server, smsc, gateway):
        start = trio.current_time()
        await converse(smsc, 500, LINES[:2])
        assert_in_order(smsc, 500, LINES[:2])
        assert gateway.metrics.throttled._value.get() > 0
        assert 1000 / (trio.current_time() - start) <= 220


async def test_long_unicode_both_ways_through_the_server(tmp_path, autojump_clock):
    text = "Hi 😀 are you free tonight? I'm at the Hôtel — room 12 " * 4
    async with smpp_server(tmp_path, split="sar") as (_server, smsc, _gateway):
        await smsc.deliver("+12065550199", OUR, text, mode="udh")
        await smsc.deliver("+12065550198", OUR, text, mode="sar")
        assert await smsc.wait_for("+12065550199", 1) == [f"re: {text}"]
        assert await smsc.wait_for("+12065550198", 1) == [f"re: {text}"]
        assert all(s.sar_total_segments for s in smsc.submits)


async def test_gateway_metrics_join_the_server_registry(tmp_path, autojump_clock):
    async with smpp_server(tmp_path) as (server, smsc, _gateway):
        await smsc.deliver("+12065550199", OUR, "hi")
        await smsc.wait_for("+12065550199", 1)
        text = server.metrics.render().decode()
        assert 'intercept_smpp_pdus_total{command="submit_sm",direction="out",' \
               'status="ESME_ROK"} 1.0' in text
        assert "intercept_smpp_bound 1.0" in text


async def test_replies_waiting_for_a_send_slot_at_shutdown_go_out_after_restart(
        tmp_path, autojump_clock):
    """A graceful stop while replies wait for the rate limit: they go back to the queue (not
    'unknown'), and the next start sends each exactly once."""
    smsc = Smsc()
    config = make_config(runtime={"hibernate_after": "1h", "shutdown_grace": "1s"})
    buyers = [buyer_number(i) for i in range(30)]

    def new_server() -> Server:
        gateway = SmppGateway(connect=smsc.connect, system_id="intercept", password="secret",
                              wall_clock=lambda: 1.7e9 + trio.current_time(), rate=5.0)
        return Server(config, registry=registry(), gateway=gateway,
                      store_path=tmp_path / "smpp.db", threaded_store=False)

    async with trio.open_nursery() as outer:
        await outer.start(smsc.run)
        first = new_server()
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            for their in buyers:
                smsc.deliver_nowait(their, OUR, f"hi {their}")
            while len(smsc.messages) < 5:
                await trio.sleep(0.05)
            first.stop()
        db = sqlite3.connect(tmp_path / "smpp.db")
        stopped = Counter(s for (s,) in db.execute("SELECT status FROM outbox"))
        db.close()
        assert stopped["queued"] > 0 and stopped["unknown"] == 0 and stopped["sending"] == 0
        second = new_server()
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run)
            with trio.fail_after(600):
                for their in buyers:
                    await smsc.wait_for(their, 1)
            await trio.sleep(2)
            rows = Counter(s for (s,) in second.store.query("SELECT status FROM outbox"))
            second.stop()
        outer.cancel_scope.cancel()
    assert rows == {"delivered": 30}
    for their in buyers:
        assert smsc.phones[their] == [f"re: hi {their}"]
    assert len(smsc.messages) == 30
