"""Caller-name lookups against the fake Lookup v2 API: answers, cache, daily budget, timeouts
and the circuit breaker, on MockClock (the fake runs in process through httpx.ASGITransport)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from intercept.buyers.lookups import (
    BudgetSpent,
    CircuitOpen,
    LookupSettings,
    ProviderError,
    TwilioLookup,
    install,
)
from intercept.config import config_from_dict
from intercept.engine import LOOKUP_KINDS, compile_text
from intercept.errors import ConfigError
from intercept.runtime.clock import WallClock
from intercept.runtime.lookups import Lookups, number_metadata
from intercept.store import Store
from loadtest.fake_lookup import FakeLookup, Faults

from helpers import OUR, make_config, running

SID, TOKEN = "AC" + "1" * 32, "t" * 32
BUYER, OTHER = "+12065550199", "+14045550177"


@pytest.fixture(autouse=True)
def number_data() -> None:
    """Load phonenumbers' data before MockClock runs: loading it in a worker thread takes
    real time, which MockClock would count as a timeout."""
    number_metadata(BUYER)


@dataclass
class Env:
    fake: FakeLookup
    provider: TwilioLookup
    store: Store
    clock: WallClock

    def usage(self) -> list[tuple[str, int]]:
        return self.store.query("SELECT day, requests FROM lookup_usage ORDER BY day")


@asynccontextmanager
async def provider(tmp_path: Path, *, faults: Faults | None = None, token: str = TOKEN,
                   **settings: Any) -> AsyncIterator[Env]:
    fake = FakeLookup(SID, TOKEN, faults=faults, names={BUYER: "JOHN DOE"})
    store = Store(tmp_path / "lookups.db", threaded=False)
    clock = WallClock()
    values = {"api_url": "http://lookups.test", "account_sid": SID, "auth_token": token,
              "timeout": 5.0, "cache_ttl": 86400.0, "daily_budget": 100,
              "breaker_failures": 3, "breaker_cooldown": 60.0} | settings
    lookup = TwilioLookup(store=store, settings=LookupSettings(**values), clock=clock.now,
                          transport=httpx.ASGITransport(app=fake))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            try:
                yield Env(fake, lookup, store, clock)
            finally:
                await lookup.aclose()
                store.close()
    finally:
        store.shutdown()


async def test_an_answer_gives_caller_name_and_line_type_and_is_cached(tmp_path, autojump_clock):
    async with provider(tmp_path) as env:
        fields = await env.provider(BUYER, OUR)
        assert fields["name"] == "JOHN DOE"
        assert fields["caller_type"] == "consumer"
        assert fields["line_type"] and fields["carrier"] and fields["valid"] == "yes"
        assert await env.provider(BUYER, OUR) == fields  # from the cache: no new request
        assert env.fake.requests == [BUYER]
        (row,) = env.store.query("SELECT number, kind, provider, data FROM lookup_cache")
        assert row[:3] == (BUYER, "caller_name", "twilio") and json.loads(row[3]) == fields
        assert env.usage()[0][1] == 1


async def test_the_cache_expires_after_its_ttl(tmp_path, autojump_clock):
    async with provider(tmp_path, cache_ttl=3600.0) as env:
        await env.provider(BUYER, OUR)
        await trio.sleep(3599)
        await env.provider(BUYER, OUR)
        assert env.fake.requests == [BUYER]
        await trio.sleep(2)
        await env.provider(BUYER, OUR)
        assert env.fake.requests == [BUYER, BUYER]


async def test_the_daily_budget_stops_requests_until_the_next_utc_day(tmp_path,
                                                                      autojump_clock):
    async with provider(tmp_path, daily_budget=2) as env:
        await env.provider("+12065550101", OUR)
        await env.provider("+12065550102", OUR)
        with pytest.raises(BudgetSpent, match="daily budget of 2 lookups is spent"):
            await env.provider("+12065550103", OUR)
        assert len(env.fake.requests) == 2
        assert await env.provider("+12065550101", OUR)  # the cache still answers
        now = env.clock.now()
        await trio.sleep(86400 - now % 86400 + 1)  # past midnight UTC
        assert (await env.provider("+12065550103", OUR))["name"]
        assert [n for _, n in env.usage()] == [2, 1]


async def test_a_slow_answer_times_out_and_counts_as_a_failure(tmp_path, autojump_clock):
    faults = Faults(script=deque(["slow"]), slow_seconds=3600)
    async with provider(tmp_path, faults=faults, timeout=5.0) as env:
        started = trio.current_time()
        with pytest.raises(ProviderError, match="did not answer within 5s"):
            await env.provider(BUYER, OUR)
        assert trio.current_time() - started == pytest.approx(5.0)
        assert env.provider.breaker.consecutive == 1
        assert env.store.query("SELECT count(*) FROM lookup_cache") == [(0,)]
        assert (await env.provider(BUYER, OUR))["name"] == "JOHN DOE"
        assert env.provider.breaker.consecutive == 0


async def test_the_breaker_opens_after_failures_and_half_opens_after_the_cooldown(
        tmp_path, autojump_clock):
    faults = Faults(script=deque(["500", "429", "500", "500", "ok"]))
    async with provider(tmp_path, faults=faults, breaker_failures=3,
                        breaker_cooldown=60.0) as env:
        numbers = [f"+1206555020{i}" for i in range(9)]
        for n in numbers[:3]:
            with pytest.raises(ProviderError, match=r"answered (500|429)"):
                await env.provider(n, OUR)
        assert env.provider.breaker.state == "open"
        with pytest.raises(CircuitOpen, match="paused after 3 failures"):
            await env.provider(numbers[3], OUR)
        assert len(env.fake.requests) == 3  # open: nothing was sent
        await trio.sleep(60)
        assert env.provider.breaker.state == "half-open"
        with pytest.raises(ProviderError):  # the trial fails: open again
            await env.provider(numbers[4], OUR)
        assert env.provider.breaker.state == "open"
        with pytest.raises(CircuitOpen):
            await env.provider(numbers[5], OUR)
        await trio.sleep(60)
        assert (await env.provider(numbers[6], OUR))["name"]  # the trial works: closed
        assert env.provider.breaker.state == "closed"
        assert (await env.provider(numbers[7], OUR))["name"]
        assert len(env.fake.requests) == 6
        assert env.fake.faults_injected == ["500", "429", "500", "500"]


async def test_a_refused_request_is_not_a_breaker_failure(tmp_path, autojump_clock):
    async with provider(tmp_path, token="wrong-token-xxxxxxxxxxxxxxxx",
                        breaker_failures=1) as env:
        for _ in range(3):
            with pytest.raises(Exception, match="refused the request \\(401\\)"):
                await env.provider(BUYER, OUR)
        assert env.provider.breaker.state == "closed"


async def test_only_one_trial_request_while_half_open(tmp_path, autojump_clock):
    faults = Faults(script=deque(["500", "slow"]), slow_seconds=3)
    async with provider(tmp_path, faults=faults, breaker_failures=1,
                        breaker_cooldown=10.0) as env:
        with pytest.raises(ProviderError):
            await env.provider(BUYER, OUR)
        await trio.sleep(10)
        outcomes: list[str] = []

        async def ask(number: str) -> None:
            try:
                await env.provider(number, OUR)
                outcomes.append("ok")
            except CircuitOpen:
                outcomes.append("open")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "+12065550301")
            await trio.sleep(1)  # the trial is in flight (slow)
            nursery.start_soon(ask, "+12065550302")
        assert sorted(outcomes) == ["ok", "open"]
        assert len(env.fake.requests) == 2


async def test_the_buyer_lookup_merges_offline_metadata_and_the_caller_name(
        tmp_path, autojump_clock):
    async with provider(tmp_path) as env:
        lookups = Lookups()
        install(lookups, env.provider)
        result = await lookups.lookup("buyer", BUYER, OUR)
        assert result.ok
        assert result.data["caller_name"] == "JOHN DOE"
        assert result.data["region"] == "US" and result.data["valid"] == "yes"
        assert result.data["line_type"]
        named = await lookups.lookup("caller_name", BUYER, OUR)
        assert named.ok and named.data["name"] == "JOHN DOE"
        env.provider.breaker.opened_at = trio.current_time()  # open: offline data only
        env.provider.breaker.consecutive = 3
        offline = await lookups.lookup("buyer", OTHER, OUR)
        assert offline.ok and offline.data["region"] == "US"
        assert "caller_name" not in offline.data
        assert "paused" in offline.data["caller_name_error"]


async def test_without_a_provider_buyer_is_offline_only_and_caller_name_is_unknown(
        autojump_clock):
    lookups = Lookups()
    install(lookups, None)
    result = await lookups.lookup("buyer", BUYER, OUR)
    assert result.ok and result.data["region"] == "US"
    missing = await lookups.lookup("caller_name", BUYER, OUR)
    assert not missing.ok and "no lookup provider" in missing.data["error"]


SCENARIO = """
name: named
version: 1
start: first
states:
  first:
    lookup: buyer
    expect:
      - otherwise: true
        goto: ask
  ask:
    say: "who's this?"
    expect:
      - otherwise: true
        goto: reply
    on_lookup:
      - kind: buyer
        field: caller_name
        tag: named
        stay: true
      - otherwise: true
        stay: true
  reply:
    say: "hi {buyer.caller_name|there} from {buyer.region|?}"
    end: done
"""


async def test_a_scenario_uses_the_caller_name_through_the_server(tmp_path, autojump_clock,
                                                                  monkeypatch):
    fake = FakeLookup(SID, TOKEN, names={BUYER: "JOHN DOE"})
    original = httpx.AsyncClient.__init__

    def through_fake(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        kwargs["transport"] = httpx.ASGITransport(app=fake)
        original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", through_fake)
    config = make_config("named", lookups={"provider": "twilio", "account_sid": SID,
                                           "auth_token": TOKEN,
                                           "api_url": "http://lookups.test"})
    from intercept.scenarios import ScenarioRegistry

    reg = ScenarioRegistry([compile_text(SCENARIO)])
    async with running(tmp_path, config, reg=reg) as (server, phones):
        for text in ("hey", "mike"):
            done = await server.gateway.inject(their_number=BUYER, our_number=OUR, text=text)
            await server.settled(done.conversation_id, done.conv_seq)
            await trio.sleep(5)  # the lookup's answer arrives
        assert phones.by_number[BUYER] == ["who's this?", "hi JOHN DOE from US"]
        assert fake.requests == [BUYER]
        assert server.store.query("SELECT name FROM tags") == [("named",)]


def test_lookups_are_off_by_default_and_need_a_token_when_on(tmp_path):
    assert LookupSettings.from_config(make_config()) is None
    with pytest.raises(ConfigError, match=r"lookups\.auth_token: give the auth token"):
        LookupSettings.from_config(config_from_dict(
            {"lookups": {"provider": "twilio", "account_sid": SID}}, environ={}))
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = config_from_dict({"lookups": {"provider": "twilio", "account_sid": SID,
                                           "auth_token_file": "token", "daily_budget": 7}},
                              source=str(tmp_path / "intercept.toml"), environ={})
    settings = LookupSettings.from_config(config)
    assert settings is not None
    assert (settings.auth_token, settings.daily_budget, settings.timeout) == (TOKEN, 7, 5.0)
    env = config_from_dict({"lookups": {"provider": "twilio", "account_sid": SID}},
                           environ={"INTERCEPT_LOOKUPS_AUTH_TOKEN": TOKEN})
    assert LookupSettings.from_config(env).auth_token == TOKEN  # type: ignore[union-attr]


async def test_the_runtime_answers_exactly_the_lookup_kinds_the_compiler_accepts(tmp_path):
    async with provider(tmp_path) as env:
        lookups = Lookups()
        install(lookups, env.provider)
        assert set(lookups._providers) == set(LOOKUP_KINDS)
        with pytest.raises(ValueError, match=r"'weather' is not in .*LOOKUP_KINDS"):
            lookups.register("weather", env.provider)
