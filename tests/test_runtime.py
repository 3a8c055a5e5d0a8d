"""Actors, router and sender against the real store and the sim gateway (MockClock)."""

from __future__ import annotations

import json

import trio

from intercept.engine import Machine, compile_text
from intercept.gateways import SimGateway
from intercept.scenarios import ScenarioRegistry

from helpers import ECHO, OTHER_OUR, OUR, make_config, running

BUYER = "+12065550199"
BUYER2 = "+12065550198"


def sample(server, name: str, labels: dict[str, str] | None = None) -> float:
    value = server.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


async def test_replies_come_in_order(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        last = None
        for i in range(5):
            last = await server.gateway.inject(their_number=BUYER, our_number=OUR,
                                               text=f"m{i}")
        await server.settled(last.conversation_id, last.conv_seq)
        assert phones.by_number[BUYER] == [f"re: m{i}" for i in range(5)]
        bye = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="bye")
        await server.settled(bye.conversation_id, bye.conv_seq)
        assert phones.by_number[BUYER][-1] == "bye from Jasmine in Seattle"
        assert sample(server, "intercept_conversations_ended_total",
                      {"outcome": "finished"}) == 1
        assert sample(server, "intercept_conversations_started_total") == 1


async def test_each_number_has_its_persona(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        a = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="bye")
        b = await server.gateway.inject(their_number=BUYER2, our_number=OTHER_OUR, text="bye")
        await server.settled(a.conversation_id, a.conv_seq)
        await server.settled(b.conversation_id, b.conv_seq)
        assert phones.by_number[BUYER] == ["bye from Jasmine in Seattle"]
        assert phones.by_number[BUYER2] == ["bye from Kayla in Atlanta"]


async def test_redelivery_is_dropped(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        first = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hi",
                                            gateway_id="gw-1")
        again = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hi",
                                            gateway_id="gw-1")
        assert not first.duplicate and again.duplicate
        assert again.conv_seq == first.conv_seq
        await server.settled(first.conversation_id, first.conv_seq)
        await trio.sleep(5)
        assert phones.by_number[BUYER] == ["re: hi"]
        assert sample(server, "intercept_messages_in_duplicate_total") == 1
        assert sample(server, "intercept_messages_in_total") == 1


class Crashing(Machine):
    """The echo machine, except that a message "boom" raises (a bug in the engine, say)."""

    def __init__(self, machine: Machine, *, times: int = 1000):
        super().__init__(machine.name, machine.version, machine.start, machine.nodes)
        self.times = times

    def step(self, state, event, now):
        if getattr(event, "text", "") == "boom" and self.times > 0:
            self.times -= 1
            raise RuntimeError("engine bug")
        return super().step(state, event, now)


async def test_a_crashing_actor_leaves_the_others_alone(tmp_path, autojump_clock):
    reg = ScenarioRegistry([Crashing(compile_text(ECHO))])
    async with running(tmp_path, reg=reg) as (server, phones):
        boom = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="boom")
        others = []
        for i in range(20):
            others.append(await server.gateway.inject(
                their_number=f"+1206555{1000 + i:04d}", our_number=OUR, text=f"hello {i}"))
        for ingested in others:
            await server.settled(ingested.conversation_id, ingested.conv_seq)
        await server.settled(boom.conversation_id, boom.conv_seq)
        for i in range(20):
            assert phones.by_number[f"+1206555{1000 + i:04d}"] == [f"re: hello {i}"]
        assert BUYER not in phones.by_number
        assert sample(server, "intercept_actor_crashes_total") == 3
        assert sample(server, "intercept_actor_restarts_total") == 2
        assert sample(server, "intercept_conversations_parked_total") == 1
        status = server.store.query("SELECT status, crashes FROM conversations WHERE id = ?",
                                    (boom.conversation_id,))
        assert status == [("parked", 3)]
        # A parked conversation stays quiet; the others go on.
        later = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hello")
        ok = await server.gateway.inject(their_number=BUYER2, our_number=OUR, text="still fine")
        await server.settled(ok.conversation_id, ok.conv_seq)
        await server.settled(later.conversation_id, later.conv_seq)
        assert BUYER not in phones.by_number
        assert phones.by_number[BUYER2] == ["re: still fine"]


async def test_a_crash_restarts_from_the_committed_state(tmp_path, autojump_clock):
    reg = ScenarioRegistry([Crashing(compile_text(ECHO), times=1)])
    async with running(tmp_path, reg=reg) as (server, phones):
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="one")
        last = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="boom")
        await server.settled(last.conversation_id, last.conv_seq)
        assert phones.by_number[BUYER] == ["re: one", "re: boom"]
        assert sample(server, "intercept_actor_crashes_total") == 1
        assert sample(server, "intercept_actor_restarts_total") == 1
        assert sample(server, "intercept_conversations_parked_total") == 0


async def test_idle_actors_hibernate_and_wake_with_their_state(tmp_path, autojump_clock):
    config = make_config(runtime={"hibernate_after": "1m"})
    async with running(tmp_path, config) as (server, phones):
        first = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="a")
        await server.settled(first.conversation_id, first.conv_seq)
        assert len(server.router.actors) == 1
        await trio.sleep(61)
        assert len(server.router.actors) == 0
        assert sample(server, "intercept_actor_hibernations_total") == 1
        assert sample(server, "intercept_live_actors") == 0
        bye = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="bye")
        await server.settled(bye.conversation_id, bye.conv_seq)
        assert phones.by_number[BUYER] == ["re: a", "bye from Jasmine in Seattle"]
        assert sample(server, "intercept_actor_wakes_total") == 2


async def test_a_poke_reloads_the_actor_without_calling_it_an_overflow(tmp_path,
                                                                      autojump_clock):
    config = make_config(runtime={"hibernate_after": "1h"})
    async with running(tmp_path, config) as (server, phones):
        first = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="a")
        await server.settled(first.conversation_id, first.conv_seq)
        handle = server.router.actors[first.conversation_id]
        server.router.poke(first.conversation_id)
        assert handle.stale and not handle.overflowed
        await trio.sleep(1)
        assert not handle.stale and not handle.overflowed  # reloaded
        assert server.router.actors[first.conversation_id] is handle
        second = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="b")
        await server.settled(second.conversation_id, second.conv_seq)
        assert phones.by_number[BUYER] == ["re: a", "re: b"]


async def test_timer_fires_for_a_hibernated_conversation(tmp_path, autojump_clock):
    config = make_config("nudge", runtime={"hibernate_after": "1m"})
    async with running(tmp_path, config) as (server, phones):
        first = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hey")
        await server.settled(first.conversation_id, first.conv_seq)
        assert phones.by_number[BUYER] == ["u there?"]
        await trio.sleep(5 * 60)
        assert len(server.router.actors) == 0  # hibernated, with its timer in the router's heap
        await trio.sleep(6 * 60)
        assert phones.by_number[BUYER] == ["u there?", "hello??"]
        assert sample(server, "intercept_conversations_ended_total", {"outcome": "silent"}) == 1


async def test_a_reply_cancels_the_timer(tmp_path, autojump_clock):
    config = make_config("nudge")
    async with running(tmp_path, config) as (server, phones):
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hey")
        await trio.sleep(9 * 60)
        last = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="yes")
        await server.settled(last.conversation_id, last.conv_seq)
        await trio.sleep(30 * 60)
        assert phones.by_number[BUYER] == ["u there?", "ok"]


async def test_replies_wait_for_their_human_like_delay(tmp_path, autojump_clock):
    config = make_config(delays={"enabled": True, "min": "3s", "max": "2m", "jitter": 0.0,
                                 "think": "2s", "read_cps": 10, "type_cps": 5})
    async with running(tmp_path, config) as (server, phones):
        start = trio.current_time()
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="x" * 30)
        # reading 30 chars at 10/s = 3s, thinking 2s, typing "re: xxx…" (34 chars) at 5/s = 6.8s
        await trio.sleep(11)
        assert phones.all == []
        await phones.wait_for(1)
        elapsed = trio.current_time() - start
        assert 11.8 - 0.1 <= elapsed <= 11.8 + 0.2
        row = server.store.query("SELECT status, not_before - created_at FROM outbox")
        assert row[0][0] == "sent" and abs(row[0][1] - 11.8) < 0.01


async def test_a_flooded_inbox_spills_to_the_store_without_blocking(tmp_path, autojump_clock):
    config = make_config(runtime={"inbox_size": 2})
    async with running(tmp_path, config) as (server, phones):
        last = None
        for i in range(200):
            last = await server.gateway.inject(their_number=BUYER, our_number=OUR, text=f"{i}")
        other = await server.gateway.inject(their_number=BUYER2, our_number=OUR, text="x")
        await server.settled(other.conversation_id, other.conv_seq)
        await server.settled(last.conversation_id, last.conv_seq)
        assert phones.by_number[BUYER] == [f"re: {i}" for i in range(200)]
        assert phones.by_number[BUYER2] == ["re: x"]


async def test_unknown_number_is_kept_but_not_answered(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        msg = await server.gateway.inject(their_number=BUYER, our_number="+13125550100",
                                          text="hello")
        await trio.sleep(1)
        assert phones.all == []
        rows = server.store.query("SELECT body FROM inbound WHERE conversation_id = ?",
                                  (msg.conversation_id,))
        assert rows == [("hello",)]
        assert sample(server, "intercept_messages_unrouted_total") == 1


async def test_restart_sends_queued_replies_once_and_continues(tmp_path, autojump_clock):
    """Stop with replies still delayed; a new server on the same file sends each once."""
    config = make_config("echo", delays={"enabled": True, "min": "30s", "max": "30s",
                                         "jitter": 0.0})
    log = tmp_path / "handset.jsonl"
    async with running(tmp_path, config, gateway=SimGateway(log_path=log)) as (server, phones):
        for text in ("one", "two"):
            await server.gateway.inject(their_number=BUYER, our_number=OUR, text=text)
        await trio.sleep(1)
        assert phones.all == []
    async with running(tmp_path, config, gateway=SimGateway(log_path=log)) as (server, phones):
        await phones.wait_for(2)
        last = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="bye")
        await server.settled(last.conversation_id, last.conv_seq)
        assert phones.by_number[BUYER] == ["re: one", "re: two", "bye from Jasmine in Seattle"]
    lines = log.read_text().splitlines()
    assert len(lines) == 3


async def test_rows_caught_mid_submit_are_reconciled_not_resent(tmp_path, autojump_clock):
    """A crash between 'sending' and 'sent': the gateway's log decides, never a blind resend."""
    log = tmp_path / "handset.jsonl"
    async with running(tmp_path, gateway=SimGateway(log_path=log)) as (server, phones):
        a = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="a")
        b = await server.gateway.inject(their_number=BUYER2, our_number=OUR, text="b")
        await server.settled(a.conversation_id, a.conv_seq)
        await server.settled(b.conversation_id, b.conv_seq)
    # Pretend the process died after marking both 'sending' but before recording the outcome,
    # and that only the first one reached the network.
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n")
    from intercept.store import connect

    db = connect(tmp_path / "test.db")
    db.execute("UPDATE outbox SET status = 'sending'")
    db.conn.close()
    async with running(tmp_path, gateway=SimGateway(log_path=log)) as (server, phones):
        await phones.wait_for(1)
        await trio.sleep(1)
        assert len(phones.all) == 1  # only the one that never went out is sent again
        first = json.loads(lines[0])["outbox_id"]
        statuses = dict(server.store.query("SELECT id, status FROM outbox"))
        # the logged one was reconciled as sent; the other went out again and got its receipt
        assert statuses.pop(first) == "sent"
        assert list(statuses.values()) == ["delivered"]
    assert len(log.read_text().splitlines()) == 2


async def test_metrics_count_the_work(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _):
        last = None
        for i in range(3):
            last = await server.gateway.inject(their_number=BUYER, our_number=OUR, text=f"{i}")
        await server.settled(last.conversation_id, last.conv_seq)
        exact = {"intercept_live_actors": 1, "intercept_messages_in_total": 3,
                 "intercept_messages_out_total": 3,
                 "intercept_engine_step_seconds_count": 4,  # the start, then one per message
                 "intercept_outbox_depth": 0, "intercept_actor_crashes_total": 0,
                 "intercept_actor_hibernations_total": 0}
        found = {name: server.metrics.registry.get_sample_value(name) for name in exact}
        assert found == exact
        # How ops group into commits depends on task scheduling; what is exact is that every
        # commit is both timed and sized, and that each holds at least one op.
        commits = sample(server, "intercept_store_commit_seconds_count")
        assert commits == sample(server, "intercept_store_batch_size_count") >= 1
        assert sample(server, "intercept_store_batch_size_bucket", {"le": "+Inf"}) == commits
        assert sample(server, "intercept_store_batch_size_sum") >= commits
        text = server.metrics.render().decode()
        assert "intercept_messages_in_total 3.0\n" in text


MERGER = """
name: merger
version: 1
start: wait
settings:
  merge: 15s
states:
  wait:
    expect:
      - otherwise: true
        goto: reply
  reply:
    say: "got: {message}"
    goto: wait
"""


async def test_fragments_within_the_quiet_period_get_one_answer(tmp_path, autojump_clock):
    from intercept.engine import compile_text
    from intercept.scenarios import ScenarioRegistry

    config = make_config("merger", delays={"enabled": True, "min": "1s", "max": "1s",
                                           "jitter": 0.0, "think": "0s"})
    reg = ScenarioRegistry([compile_text(MERGER)])
    async with running(tmp_path, config, reg=reg) as (server, phones):
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hey")
        await trio.sleep(30)
        assert phones.by_number[BUYER] == ["got: hey"]
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="u avail")
        await trio.sleep(5)
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="tonite?")
        await trio.sleep(14)
        assert phones.by_number[BUYER] == ["got: hey"]  # still inside the quiet period
        await trio.sleep(5)
        assert phones.by_number[BUYER] == ["got: hey", "got: u avail\ntonite?"]
        assert server.store.query("SELECT processed_count FROM conversations") == [(3,)]
