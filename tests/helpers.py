"""Shared test helpers: a small config, test scenarios and an in-process server on a temp store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from intercept.config import Config, config_from_dict
from intercept.engine import compile_text
from intercept.gateways import OutboundMessage, SimGateway
from intercept.scenarios import ScenarioRegistry
from intercept.server import Server

OUR = "+12065550100"
OTHER_OUR = "+14045550111"

# The admin API trusts no address, so tests that call it bring a token (as operators do).
ADMIN_TOKEN = "helpers-admin-token-00001"
ADMIN_TOKENS = f"admin:{ADMIN_TOKEN}:root"
"""For ``api.tokens`` / INTERCEPT_API_TOKENS."""
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

ECHO = """
name: echo
version: 1
start: wait
states:
  wait:
    expect:
      - keywords: [bye]
        goto: done
      - otherwise: true
        goto: reply
  reply:
    say: "re: {message}"
    goto: wait
  done:
    say: "bye from {persona.name} in {city.name}"
    end: finished
"""

NUDGE = """
name: nudge
version: 1
start: wait
states:
  wait:
    expect:
      - otherwise: true
        goto: asked
  asked:
    say: "u there?"
    expect:
      - otherwise: true
        goto: wait_again
    timeout: {after: 10m, goto: nudged}
  wait_again:
    say: "ok"
    goto: wait
  nudged:
    say: "hello??"
    end: silent
"""


def make_config(scenario: str = "echo", **sections: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {
        "cities": {"seattle": {"name": "Seattle", "link": "https://help.example/sea"},
                   "atlanta": {"name": "Atlanta", "link": "https://help.example/atl"}},
        "numbers": [
            {"number": OUR, "city": "seattle", "scenario": scenario,
             "persona": {"name": "Jasmine", "age": 23}},
            {"number": OTHER_OUR, "city": "atlanta", "scenario": scenario,
             "persona": {"name": "Kayla"}},
        ],
        "http": {"enabled": False},
        "delays": {"enabled": False},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw, environ={})


def registry(*texts: str) -> ScenarioRegistry:
    return ScenarioRegistry([compile_text(t) for t in (texts or (ECHO, NUDGE))])


class Phones:
    """The simulated handsets: every delivered message, by their number."""

    def __init__(self, gateway: SimGateway):
        self.by_number: dict[str, list[str]] = defaultdict(list)
        self.all: list[OutboundMessage] = []
        gateway.subscribe(self._deliver)

    def _deliver(self, message: OutboundMessage) -> None:
        self.all.append(message)
        self.by_number[message.their_number].append(message.text)

    async def wait_for(self, count: int, *, timeout: float = 3600) -> None:
        with trio.fail_after(timeout):
            while len(self.all) < count:
                await trio.sleep(0.05)


@asynccontextmanager
async def running(tmp_path: Path, config: Config | None = None, *,
                  reg: ScenarioRegistry | None = None, db: str = "test.db",
                  gateway: SimGateway | None = None, threaded: bool = False,
                  from_folder: bool = False) -> AsyncIterator[tuple[Server, Phones]]:
    """An in-process server. The store commits inline unless `threaded`, so MockClock time
    only moves when every task waits on a timer, never during a commit."""
    gateway = gateway or SimGateway(receipts=False)
    phones = Phones(gateway)
    reg = None if from_folder else reg or registry()
    server = Server(config or make_config(), registry=reg, gateway=gateway,
                    store_path=tmp_path / db, threaded_store=threaded)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield server, phones
        server.stop()
