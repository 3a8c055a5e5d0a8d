"""Opt-outs during campaigns: random interleavings of opt-outs and sends (hypothesis), and every
opt-out word, in odd casing with trailing text, in a campaign conversation."""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intercept.engine.optout import OPT_OUT
from intercept.runtime import clock as clock_module

from helpers import SEND, Log, add_ads, outreach_config, running, shipped, utc

TARGETS = [f"+1206555{n:04d}" for n in range(140, 146)]
START = utc(2024, 5, 1, 17)  # 10:00 in Seattle

event = st.tuples(st.integers(0, 420), st.sampled_from(["carrier", "stop", "pause", "start"]),
                  st.integers(0, len(TARGETS) - 1))


async def _interleave(tmp: Path, targets: list[str], events: list[tuple[int, str, int]]
                      ) -> None:
    add_ads(tmp / "test.db", targets, now=START)
    config = outreach_config({"name": "spring", "rate": "1/m", "rate_per_number": "1/m"})
    async with running(tmp, config, reg=shipped()) as (server, _):
        log = Log(server)
        t0 = server.clock.now()
        await server.campaigns.start("spring", actor="test")
        stop_first: set[str] = set()
        opted: set[str] = set()
        for at, kind, index in sorted(events):
            await trio.sleep(max(0.0, t0 + at - server.clock.now()))
            number = targets[index % len(targets)]
            if kind == "carrier":
                await server.carrier_opt_out(number)
                opted.add(number)
            elif kind == "stop":
                if number not in opted:
                    stop_first.add(number)
                opted.add(number)
                done = await server.gateway.inject(their_number=number, our_number=SEND,
                                                   text="Stop texting me")
                await server.settled(done.conversation_id, done.conv_seq, poll=0.5)
            elif kind == "pause":
                await server.campaigns.pause("spring", actor="test")
            else:
                await server.campaigns.start("spring", actor="test")
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(3600)
        kinds = log.kinds()
        opted_at = dict(server.store.query("SELECT number, updated_at FROM opt_outs "
                                           "WHERE opted_out"))
        assert set(opted_at) == opted
        targets_status = dict(server.store.query(
            "SELECT number, status FROM campaign_targets WHERE campaign = 'spring'"))
        assert set(targets_status) == set(targets)  # every number decided in the end
        for number in targets:
            received = log.to(number)
            campaign = [r for r in received if kinds[r.message.outbox_id] == "campaign"]
            assert len(campaign) <= 1, number
            assert (len(campaign) == 1) == (targets_status[number] == "sent")
            confirmations = [r for r in received
                             if kinds[r.message.outbox_id] == "confirmation"]
            assert len(confirmations) == (1 if number in stop_first else 0), number
            if number in opted_at:
                late = [kinds[r.message.outbox_id] for r in received if r.at > opted_at[number]]
                assert set(late) <= {"confirmation"}, (number, late)
                if targets_status[number] != "sent":
                    assert targets_status[number] in ("opted_out", "in_conversation")
                    assert not campaign
            else:
                assert targets_status[number] == "sent"
        refused = server.store.query("SELECT count(*) FROM outbox WHERE status = 'refused' "
                                     "AND kind = 'confirmation'")
        assert refused == [(0,)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(2, len(TARGETS)), events=st.lists(event, max_size=10))
def test_random_interleavings_of_opt_outs_and_sends(count, events):
    original = clock_module.time
    clock_module.time = _FixedTime(START)  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory(prefix="intercept-campaign-") as tmp:
            trio.run(_interleave, Path(tmp), TARGETS[:count], events,
                     clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        clock_module.time = original


class _FixedTime:
    def __init__(self, at: float):
        self.at = at

    def time(self) -> float:
        return self.at


ODD = {"stop": "sToP pls", "stopall": "StopAll now", "unsubscribe": "uNsUbScRiBe me!!",
       "cancel": "CANCEL... thx", "end": "eNd it", "quit": "qUiT texting me",
       "revoke": "ReVoKe consent", "optout": "OptOut ok"}


async def test_every_opt_out_word_in_a_campaign_conversation(tmp_path, autojump_clock,
                                                             monkeypatch):
    assert set(ODD) == OPT_OUT
    monkeypatch.setattr(clock_module, "time", _FixedTime(START))
    targets = [f"+1206555{n:04d}" for n in range(150, 150 + len(ODD))]
    add_ads(tmp_path / "test.db", targets, now=START)
    config = outreach_config({"name": "spring", "rate": "1/s", "rate_per_number": "1/s"})
    async with running(tmp_path, config, reg=shipped()) as (server, _):
        log = Log(server)
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(60)
        assert len(log.campaign_texts()) == len(targets)
        for number, text in zip(targets, ODD.values(), strict=True):
            done = await server.gateway.inject(their_number=number, our_number=SEND, text=text)
            await server.settled(done.conversation_id, done.conv_seq)
            later = await server.gateway.inject(their_number=number, our_number=SEND,
                                                text="hello? who is this")
            await server.settled(later.conversation_id, later.conv_seq)
        await trio.sleep(3600)
        kinds = log.kinds()
        confirmation = server.config.optout.confirmation
        for number, text in zip(targets, ODD.values(), strict=True):
            got = [(kinds[r.message.outbox_id], r.message.text) for r in log.to(number)]
            assert [k for k, _ in got] == ["campaign", "confirmation"], (text, got)
            assert got[1][1] == confirmation
        opted = {n for (n,) in server.store.query("SELECT number FROM opt_outs WHERE opted_out")}
        assert opted == set(targets)


async def test_an_opt_out_with_trailing_text_does_not_reach_the_advocates(
        tmp_path, autojump_clock, monkeypatch):
    monkeypatch.setattr(clock_module, "time", _FixedTime(START))
    add_ads(tmp_path / "test.db", [TARGETS[0]], now=START)
    config = outreach_config({"name": "spring"})
    async with running(tmp_path, config, reg=shipped()) as (server, _):
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(60)
        done = await server.gateway.inject(their_number=TARGETS[0], our_number=SEND,
                                           text="stop pls")
        await server.settled(done.conversation_id, done.conv_seq)
        status = server.store.query("SELECT status FROM conversations WHERE id = ?",
                                    (done.conversation_id,))
        tags = server.store.query("SELECT name FROM tags WHERE conversation_id = ?",
                                  (done.conversation_id,))
        assert status != [("handed_off",)] and ("interested",) not in tags
