"""Campaigns under a mock clock: recipients' windows, rates, contact-again, resuming, opt-outs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio

from intercept.config import config_from_dict
from intercept.errors import ConfigError, GatewayRetryLater
from intercept.gateways import OutboundMessage, SimGateway
from intercept.scenarios import ScenarioRegistry
from intercept.server import Server
from intercept.store.campaigns import campaign_counts
from intercept.store.writer import connect

from helpers import SEND, SEND2, SEND3, START, Log, add_ads, outreach_config, running, shipped, utc

SEATTLE, NEW_YORK, CHICAGO, HONOLULU = (
    "+12065550123", "+12125550123", "+13125550123", "+18085550123")
LONDON, SYDNEY = "+447400123456", "+61291234567"
ZONES = {SEATTLE: "America/Los_Angeles", NEW_YORK: "America/New_York",
         CHICAGO: "America/Chicago", HONOLULU: "Pacific/Honolulu", LONDON: "Europe/London",
         SYDNEY: "Australia/Sydney"}
DAY = 86400.0


def local_minute(at: float, number: str) -> int:
    moment = datetime.fromtimestamp(at, ZoneInfo(ZONES[number]))
    return moment.hour * 60 + moment.minute


def counts(server: Server, name: str) -> Any:
    return campaign_counts(server.store.db.conn, name, "seattle")


def statuses(server: Server, name: str) -> dict[str, str]:
    return dict(server.store.query("SELECT number, status FROM campaign_targets "
                                   "WHERE campaign = ?", (name,)))


@pytest.fixture
def registry() -> Iterator[ScenarioRegistry]:
    yield shipped()


# -------------------------------------------------------------------------------------------


async def test_texts_go_out_only_inside_each_recipients_window(tmp_path, autojump_clock, wall,
                                                                registry):
    everyone = [SEATTLE, NEW_YORK, CHICAGO, HONOLULU, LONDON, SYDNEY]
    add_ads(tmp_path / "test.db", everyone)
    config = outreach_config({"name": "spring", "rate": "10/m", "rate_per_number": "10/m"})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(60)  # 12:01 UTC: only London (13:01) is inside 09:00-20:00
        assert [r.message.their_number for r in log.items] == [LONDON]
        progress = server.campaigns.progress("spring", counts(server, "spring"),
                                             server.clock.now())
        assert (progress.targets, progress.texted, progress.held, progress.waiting) == (6, 1, 5, 0)
        await trio.sleep(3 * DAY)
        texts = log.campaign_texts()
        assert sorted(r.message.their_number for r in texts) == sorted(everyone)
        assert len(log.items) == len(everyone)  # nobody replied: one text each
        for r in texts:
            assert 9 * 60 <= local_minute(r.at, r.message.their_number) < 20 * 60, r
        first = {r.message.their_number: r.at for r in texts}
        # each went out as soon as its window opened (the rates allow it)
        assert first[NEW_YORK] == pytest.approx(utc(2024, 5, 1, 13), abs=1)
        assert first[CHICAGO] == pytest.approx(utc(2024, 5, 1, 14), abs=1)
        assert first[SEATTLE] == pytest.approx(utc(2024, 5, 1, 16), abs=1)
        assert first[HONOLULU] == pytest.approx(utc(2024, 5, 1, 19), abs=1)
        assert first[SYDNEY] == pytest.approx(utc(2024, 5, 1, 23), abs=1)  # 09:00 on the 2nd
        assert set(statuses(server, "spring").values()) == {"sent"}


async def test_a_number_with_many_zones_needs_the_window_open_in_all(tmp_path, autojump_clock,
                                                                     wall, registry):
    alaska = "+19075550123"  # America/Adak (UTC-9 summer) or America/Anchorage (UTC-8)
    add_ads(tmp_path / "test.db", [alaska])
    config = outreach_config({"name": "spring"})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(2 * DAY)
        (text,) = log.items
        for zone in ("America/Adak", "America/Anchorage"):
            local = datetime.fromtimestamp(text.at, ZoneInfo(zone))
            assert 9 <= local.hour < 20
        assert text.at == pytest.approx(utc(2024, 5, 1, 18), abs=1)  # 09:00 in Adak


async def test_rates_per_number_and_overall(tmp_path, autojump_clock, wall, registry):
    targets = [f"+1206555{n:04d}" for n in range(140, 152)]
    add_ads(tmp_path / "test.db", targets)
    config = outreach_config({"name": "spring", "numbers": [SEND, SEND2],
                              "window": "00:00-24:00", "rate": "3/m",
                              "rate_per_number": "2/m"})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(3600)
        texts = log.campaign_texts()
        assert sorted(r.message.their_number for r in texts) == targets
        times = [r.at for r in texts]
        assert all(b - a >= 20 - 1e-6 for a, b in itertools.pairwise(times))
        for ours in (SEND, SEND2):
            mine = [r.at for r in texts if r.message.our_number == ours]
            assert len(mine) >= 4
            assert all(b - a >= 30 - 1e-6 for a, b in itertools.pairwise(mine))
        assert times[-1] - times[0] <= 11 * 20 + 1  # and no slower than the overall rate


async def test_never_twice_within_contact_again_after_across_campaigns(
        tmp_path, autojump_clock, wall, registry):
    targets = [SEATTLE, "+12065550124", "+12065550125"]
    add_ads(tmp_path / "test.db", targets)
    config = outreach_config(
        {"name": "first", "numbers": [SEND], "window": "00:00-24:00"},
        {"name": "second", "numbers": [SEND2], "window": "00:00-24:00"},
        {"name": "third", "numbers": [SEND3], "window": "00:00-24:00",
         "contact_again_after": "20d"})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await server.campaigns.start("first", actor="test")
        await trio.sleep(600)
        assert len(log.campaign_texts()) == 3
        await trio.sleep(10 * DAY)
        await server.campaigns.start("second", actor="test")  # 10 days later: too soon
        await trio.sleep(3600)
        assert len(log.campaign_texts()) == 3
        assert set(statuses(server, "second").values()) == {"recent"}
        await trio.sleep(31 * DAY)  # the first conversations expired (30 days of silence)
        await server.campaigns.start("third", actor="test")  # its rule is 20 days
        await trio.sleep(3600)
        texts = log.campaign_texts()
        assert len(texts) == 6
        assert {r.message.our_number for r in texts[3:]} == {SEND3}
        for number in targets:
            times = [r.at for r in texts if r.message.their_number == number]
            assert len(times) == 2 and times[1] - times[0] > 40 * DAY


async def test_skips_opted_out_and_numbers_already_talking_with_us(tmp_path, autojump_clock,
                                                                   wall, registry):
    opted, talking, fine = SEATTLE, "+12065550124", "+12065550125"
    add_ads(tmp_path / "test.db", [opted, talking, fine])
    config = outreach_config({"name": "spring", "numbers": [SEND, SEND2],
                              "window": "00:00-24:00"})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await server.carrier_opt_out(opted)
        hello = await server.gateway.inject(their_number=talking, our_number=SEND2, text="hi")
        await server.settled(hello.conversation_id, hello.conv_seq)
        before = len(log.items)
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(600)
        assert [r.message.their_number for r in log.items[before:]] == [fine]
        assert statuses(server, "spring") == {opted: "opted_out", talking: "in_conversation",
                                              fine: "sent"}
        assert not log.to(opted)
        progress = server.campaigns.progress("spring", counts(server, "spring"),
                                             server.clock.now())
        assert progress.skipped == {"opted_out": 1, "in_conversation": 1}
        assert (progress.targets, progress.texted, progress.sent) == (3, 1, 1)


async def test_new_ads_join_a_running_campaign_and_pause_stops_it(tmp_path, autojump_clock,
                                                                  wall, registry):
    add_ads(tmp_path / "test.db", [SEATTLE])
    config = outreach_config({"name": "spring", "window": "00:00-24:00"})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(60)
        assert len(log.items) == 1
        add_ads(tmp_path / "test.db", ["+12065550124"], now=server.clock.now())
        await trio.sleep(server.campaigns.refresh + 60)
        assert len(log.items) == 2
        assert await server.campaigns.pause("spring", actor="test") == "running"
        add_ads(tmp_path / "test.db", ["+12065550125"], now=server.clock.now())
        await trio.sleep(DAY)
        assert len(log.items) == 2
        progress = server.campaigns.progress("spring", counts(server, "spring"),
                                             server.clock.now())
        assert (progress.status, progress.waiting, progress.texted) == ("paused", 1, 2)
        assert await server.campaigns.start("spring", actor="test") == "paused"
        await trio.sleep(60)
        assert len(log.items) == 3


async def test_a_restart_resumes_the_campaign_and_keeps_the_rates(tmp_path, autojump_clock,
                                                                  wall, registry):
    targets = [SEATTLE, "+12065550124", "+12065550125"]
    add_ads(tmp_path / "test.db", targets)
    config = outreach_config({"name": "spring", "window": "00:00-24:00", "rate": "1/h"})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(600)
        assert len(log.items) == 1
        first = log.items[0].at
    wall(first + 1200)  # restarted 20 minutes after the first text
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await trio.sleep(3 * 3600)
        assert [r.message.their_number for r in log.items] == targets[1:]
        assert log.items[0].at == pytest.approx(first + 3600, abs=1)
        assert set(statuses(server, "spring").values()) == {"sent"}


class Throttled(SimGateway):
    """Never accepts a message: everything stays queued."""

    async def submit(self, message: OutboundMessage) -> str:
        raise GatewayRetryLater("throttled", retry_after=3600)


async def test_a_text_queued_before_a_stop_waits_for_the_window_after_it(
        tmp_path, autojump_clock, wall, registry):
    add_ads(tmp_path / "test.db", [SEATTLE])
    config = outreach_config({"name": "spring"})
    wall(utc(2024, 5, 2, 2, 55))  # 19:55 in Seattle
    async with running(tmp_path, config, reg=registry, gateway=Throttled(receipts=False)) as (
            server, _):
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(60)
        assert server.store.query("SELECT status FROM outbox") == [("queued",)]
    wall(utc(2024, 5, 2, 6))  # 23:00 in Seattle
    async with running(tmp_path, config, reg=registry) as (server, _):
        await trio.sleep(DAY)
        ((status, sent_at),) = server.store.query("SELECT status, sent_at FROM outbox")
        assert status == "sent"
        assert sent_at == pytest.approx(utc(2024, 5, 2, 16), abs=1)  # 09:00 the next morning


class ThrottledUntil(SimGateway):
    """Refuses every message until `until` (mock-clock seconds), then sends normally."""

    until = 0.0

    async def submit(self, message: OutboundMessage) -> str:
        if trio.current_time() < self.until:
            raise GatewayRetryLater("throttled", retry_after=120)
        return await super().submit(message)


async def test_a_text_held_up_by_the_gateway_past_its_window_waits_for_the_next(
        tmp_path, autojump_clock, wall, registry):
    """Throttled from 19:55 to 20:10 in Seattle: the text must not go out at 20:10."""
    add_ads(tmp_path / "test.db", [SEATTLE])
    config = outreach_config({"name": "spring"})
    wall(utc(2024, 5, 2, 2, 55))  # 19:55 in Seattle
    gateway = ThrottledUntil(receipts=False)
    gateway.until = trio.current_time() + 15 * 60
    async with running(tmp_path, config, reg=registry, gateway=gateway) as (server, _):
        log = Log(server)
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(DAY)
        (text,) = log.campaign_texts()
        assert local_minute(text.at, SEATTLE) == 9 * 60  # 09:00 the next morning
        ((status,),) = server.store.query("SELECT status FROM outbox")
        assert status == "sent"


async def test_variants_replace_the_scenarios_opening_and_replies_reach_the_scenario(
        tmp_path, autojump_clock, wall, registry):
    targets = [f"+1206555{n:04d}" for n in range(140, 150)]
    add_ads(tmp_path / "test.db", targets)
    variants = ["Hi, {persona.name} here, from a free support group in {city.name}. Text YES.",
                "Free, private help in {city.name} if you want it. Text YES to talk."]
    config = outreach_config({"name": "ab", "window": "00:00-24:00", "variants": variants,
                              "rate": "1/s", "rate_per_number": "1/s"})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        await server.campaigns.start("ab", actor="test")
        await trio.sleep(60)
        texts = {r.message.text for r in log.items}
        assert texts == {"Hi, Maya0 here, from a free support group in Seattle. Text YES.",
                         "Free, private help in Seattle if you want it. Text YES to talk."}
        tags = {t for (t,) in server.store.query("SELECT DISTINCT name FROM tags")}
        assert tags == {"campaign:ab", "campaign_variant:1", "campaign_variant:2"}
        done = await server.gateway.inject(their_number=targets[0], our_number=SEND,
                                           text="yes please")
        await server.settled(done.conversation_id, done.conv_seq)
        assert "An advocate will text you" in log.to(targets[0])[-1].message.text
        status, kind = server.store.query("SELECT status, kind FROM conversations WHERE id = ?",
                                          (done.conversation_id,))[0]
        assert (status, kind) == ("handed_off", "outreach")


def test_campaign_config_errors():
    def problems(campaign: dict[str, Any], **number: Any) -> str:
        raw = {"cities": {"seattle": {"name": "S", "link": "https://x", "timezone": "Mars/Base"}},
               "numbers": [{"number": SEND, "city": "seattle", "scenario": "victim-outreach",
                            "persona": {"name": "M"}, **number},
                           {"number": SEND2, "city": "seattle", "scenario": "other",
                            "kind": "outreach", "persona": {"name": "M"}}],
               "campaigns": [{"name": "c", "city": "seattle", "numbers": [SEND], **campaign}]}
        with pytest.raises(ConfigError) as info:
            config_from_dict(raw, source="x.toml", environ={})
        return str(info.value)

    text = problems({})
    assert "x.toml: campaigns[0].numbers[0]: +12065550130 is a buyer number; give it kind = " \
           '"outreach"' in text
    assert "x.toml: cities.seattle.timezone: unknown time zone 'Mars/Base'" in text
    text = problems({"numbers": ["+12065550199", SEND, SEND2], "window": "20:00-09:00",
                     "rate": "fast", "contact_again_after": "soon", "variants": ["{price}"],
                     "name": "a b"}, kind="outreach")
    for line in [
        "campaigns[0].name: 'a b' is not a campaign name",
        "campaigns[0].numbers[0]: '+12065550199' is not one of the [[numbers]]",
        "campaigns[0].numbers: the numbers answer with different scenarios (other, "
        "victim-outreach); use one",
        "campaigns[0].variants[0]: unknown placeholder {price}; use persona.* or city.* ones",
        "campaigns[0].window: the window '20:00-09:00' must end after it starts",
        "campaigns[0].rate: expected a rate like '30/h', '1/m' or '2/s', got 'fast'",
        "campaigns[0].contact_again_after: expected a duration like",
    ]:
        assert f"x.toml: {line}" in text, (line, text)
    text = problems({"scenario": "victim-outreach", "numbers": [SEND2], "city": "paris"},
                    kind="outreach")
    assert "campaigns[0].city: unknown city 'paris'" in text
    assert ("campaigns[0].numbers[0]: +12065550131 answers with scenario 'other', not the "
            "campaign's 'victim-outreach'") in text


def test_a_campaign_whose_scenario_says_nothing_needs_variants(tmp_path, registry):
    from intercept.engine import compile_text

    from helpers import ECHO

    config = config_from_dict({
        "cities": {"seattle": {"name": "S", "link": "https://x"}},
        "numbers": [{"number": SEND, "city": "seattle", "scenario": "echo", "kind": "outreach",
                     "persona": {"name": "M"}}],
        "campaigns": [{"name": "c", "city": "seattle", "numbers": [SEND]}]},
        source="x.toml", environ={})
    reg = ScenarioRegistry([compile_text(ECHO)])
    with pytest.raises(ConfigError, match=r"campaigns\[0\]: scenario 'echo' sends nothing when "
                                          "it starts; give the campaign variants"):
        Server(config, registry=reg, gateway=SimGateway(), store_path=tmp_path / "x.db")
    assert list(tmp_path.iterdir()) == []  # refused before the store (or its lock) is opened


async def test_an_error_in_a_campaign_is_retried_not_fatal(tmp_path, autojump_clock, wall):
    from intercept.engine import Machine, Start

    base = shipped().current("victim-outreach")
    assert base is not None

    class FailsOnce(Machine):
        failures = 0

        def step(self, state, event, now):
            if isinstance(event, Start) and FailsOnce.failures:
                FailsOnce.failures -= 1
                raise RuntimeError("engine bug")
            return super().step(state, event, now)

    machine = FailsOnce(base.name, base.version, base.start, base.nodes, expire=base.expire)
    reg = ScenarioRegistry([machine, shipped().current("buyer-deterrence")])
    add_ads(tmp_path / "test.db", [SEATTLE])
    config = outreach_config({"name": "spring", "window": "00:00-24:00"})
    async with running(tmp_path, config, reg=reg) as (server, _):
        log = Log(server)
        FailsOnce.failures = 1
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(30)
        assert not log.items and FailsOnce.failures == 0
        await trio.sleep(60)
        assert [r.message.their_number for r in log.items] == [SEATTLE]


def add_deliveries(path: Path, our: str, *, failed: int, delivered: int, at: float,
                   error: str = "provider error 30007") -> None:
    """Settled outbox rows from `our` (as receipts leave them), on a conversation of theirs."""
    db = connect(path)
    try:
        with db.conn:
            cur = db.conn.execute(
                "INSERT INTO conversations (our_number, their_number, status, created_at, "
                "updated_at) VALUES (?, ?, 'ended', ?, ?)", (our, "+12065559999", at, at))
            conversation = cur.lastrowid
            rows = [(f"h{our}.{i}", conversation, i, our, "+12065559999", "x",
                     "failed" if i < failed else "delivered",
                     error if i < failed else None, at, at, at)
                    for i in range(failed + delivered)]
            db.conn.executemany(
                "INSERT INTO outbox (id, conversation_id, position, our_number, their_number, "
                "body, status, error, created_at, sent_at, updated_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    finally:
        db.conn.close()


async def test_a_number_whose_deliveries_fail_is_paused_for_campaigns(
        tmp_path, autojump_clock, wall, registry):
    targets = [f"+1206555{n:04d}" for n in range(140, 146)]
    add_ads(tmp_path / "test.db", targets)
    add_deliveries(tmp_path / "test.db", SEND, failed=15, delivered=15, at=START - 3600)
    add_deliveries(tmp_path / "test.db", SEND2, failed=1, delivered=29, at=START - 3600)
    config = outreach_config({"name": "spring", "numbers": [SEND, SEND2],
                              "window": "00:00-24:00", "rate": "10/m",
                              "rate_per_number": "10/m"},
                             health={"pause_share": 0.3, "min_messages": 20})
    async with running(tmp_path, config, reg=registry) as (server, _):
        log = Log(server)
        assert set(server.number_health.paused) == {SEND}
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(600)
        texts = log.campaign_texts()
        assert sorted(r.message.their_number for r in texts) == targets
        assert {r.message.our_number for r in texts} == {SEND2}  # never the failing number
        audit = server.store.query("SELECT actor, action, detail FROM audit "
                                   "WHERE actor = 'number-health'")
        assert [(a, b) for a, b, _ in audit] == [("number-health", "pause number")]
        assert "15 of 30 deliveries failed (50%)" in audit[0][2]
        assert "carrier_filtered 15" in audit[0][2]
        # A day later the failures have left the window: the number is used again.
        await trio.sleep(DAY)
        assert server.number_health.paused == {}
        actions = [a for (a,) in server.store.query(
            "SELECT action FROM audit WHERE actor = 'number-health'")]
        assert actions == ["pause number", "resume number"]
        metrics = server.metrics.registry.get_sample_value
        assert metrics("intercept_number_failure_share", {"number": SEND2}) is not None
