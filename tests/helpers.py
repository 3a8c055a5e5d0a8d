"""Shared test helpers: a small config, test scenarios and an in-process server on a temp store."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
from click.testing import CliRunner

from intercept.buyers.media import media_path
from intercept.cli import main
from intercept.config import Config, config_from_dict
from intercept.engine import (
    ConversationState,
    End,
    HandOff,
    Lookup,
    LookupResult,
    Machine,
    Message,
    OptIn,
    OptOut,
    Resume,
    Send,
    Start,
    Tag,
    Transition,
    compile_text,
)
from intercept.gateways import OutboundMessage, SimGateway
from intercept.scenarios import ScenarioRegistry
from intercept.server import Server
from intercept.store.ads import AdRecord, import_ads
from intercept.store.media_ops import MediaStored
from intercept.store.ops import Op
from intercept.store.writer import connect

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
        # Tests sleep through days of mock time: one number-health check an hour is enough
        # (every minute would be ~260,000 store reads for half a year).
        "health": {"interval": "1h"},
        "handoffs": {"interval": "1h"},  # the same for the hand-off queue
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


# ---- shared by several test files (from tests/test_campaigns.py) ----

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


DECOY = "+12065550100"


SEND, SEND2, SEND3 = "+12065550130", "+12065550131", "+12065550132"


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


START = utc(2024, 5, 1, 12)  # 05:00 in Seattle, 13:00 in London, 22:00 in Sydney


_REGISTRY: list[ScenarioRegistry] = []


def shipped() -> ScenarioRegistry:
    """The shipped scenarios (compiled once)."""
    if not _REGISTRY:
        _REGISTRY.append(ScenarioRegistry.from_dir(SCENARIOS))
    return _REGISTRY[0]


def outreach_config(*campaigns: dict[str, Any], senders: tuple[str, ...] = (SEND, SEND2, SEND3),
                    **sections: dict[str, Any]) -> Config:
    """Seattle with a buyer decoy, outreach numbers and the given [[campaigns]]."""
    raw: dict[str, Any] = {
        "cities": {"seattle": {"name": "Seattle", "link": "https://help.example/sea",
                               "timezone": "America/Los_Angeles"},
                   "atlanta": {"name": "Atlanta", "link": "https://help.example/atl",
                               "timezone": "America/New_York"}},
        "numbers": [{"number": DECOY, "city": "seattle", "scenario": "buyer-deterrence",
                     "persona": {"name": "Jasmine", "age": 23}},
                    *({"number": n, "city": "seattle", "scenario": "victim-outreach",
                       "kind": "outreach", "persona": {"name": f"Maya{i}"}}
                      for i, n in enumerate(senders))],
        "campaigns": [{"city": "seattle", "numbers": [SEND], **c} for c in campaigns],
        "http": {"enabled": False},
        "delays": {"enabled": False},
        # Tests sleep through days of mock time: one number-health check an hour is enough
        # (every minute would be ~260,000 store reads for half a year).
        "health": {"interval": "1h"},
        "handoffs": {"interval": "1h"},  # the same for the hand-off queue
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw, environ={})


def add_ads(path: Path, numbers: list[str], *, city: str = "seattle", now: float = START
            ) -> None:
    """Import one ad per number into the store at `path`."""
    db = connect(path)
    try:
        import_ads(db.conn, [AdRecord(city=city, source="test", text_hash=f"{city}:{n}",
                                      numbers=(n,), external_id=n) for n in numbers], now=now)
    finally:
        db.conn.close()


@dataclass
class Received:
    at: float
    message: OutboundMessage


class Log:
    """Every message the simulated phones received, with the (mock) time it went out."""

    def __init__(self, server: Server):
        self.server = server
        self.items: list[Received] = []
        server.gateway.subscribe(lambda m: self.items.append(Received(server.clock.now(), m)))

    def to(self, number: str) -> list[Received]:
        return [r for r in self.items if r.message.their_number == number]

    def kinds(self) -> dict[str, str]:
        return dict(self.server.store.query("SELECT id, kind FROM outbox"))

    def campaign_texts(self) -> list[Received]:
        kinds = self.kinds()
        return [r for r in self.items if kinds[r.message.outbox_id] == "campaign"]


# ---- shared by several test files (from tests/test_runtime_effects.py) ----

BUYER = "+12065550199"


class Scripted(Machine):
    """A machine driven by keywords, to exercise the runtime without the scenario language."""

    def __init__(self) -> None:
        super().__init__("scripted", 1, "wait", {})

    def new_state(self, *, seed: int, context: dict[str, str]) -> ConversationState:
        return ConversationState(scenario="scripted", version=1, rng=seed, vars=dict(context))

    def step(self, state, event, now):
        def moved(**changes):
            return msgspec.structs.replace(state, turn=state.turn + 1, **changes)

        if isinstance(event, Start):
            return moved(node="wait"), [Transition("", "wait", "start")]
        if isinstance(event, LookupResult):
            region = event.data.get("region", "?")
            return moved(), [Send(f"lookup {event.kind} ok={event.ok} region={region}")]
        if isinstance(event, Resume):
            return moved(paused=False), [Send("back")]
        if state.paused or state.outcome or not isinstance(event, Message):
            return state, []
        text = event.text
        if text == "tag":
            return moved(), [Tag("asked-price"), Tag("asked-price"), Send("tagged")]
        if text == "lookup":
            return moved(), [Lookup("number")]
        if text == "nolookup":
            return moved(), [Lookup("caller_name")]
        if text == "human":
            return moved(paused=True), [HandOff("wants help"), Send("a person will text you")]
        if text == "urgent":
            return moved(paused=True), [HandOff("may be in danger", "urgent"),
                                        Send("call 911 if you are in danger")]
        if text.upper() == "STOP":
            return moved(), [OptOut("You are unsubscribed. Reply START to resume.")]
        if text.upper() == "START":
            return moved(), [OptIn("Welcome back.")]
        if text == "slow":
            return moved(), [Send("slow one", delay_scale=2.0, extra=60.0)]
        if text == "go":
            return moved(node="next"), [Transition("wait", "next", "expect[0]"), Send("went")]
        if text == "finish":
            return moved(outcome="done"), [Send("bye"), End("done")]
        return moved(), [Send(f"re: {text}")]


def scripted_registry() -> ScenarioRegistry:
    return ScenarioRegistry([Scripted()])


async def say(server, text: str, their: str = BUYER):
    ingested = await server.gateway.inject(their_number=their, our_number=OUR, text=text)
    await server.settled(ingested.conversation_id, ingested.conv_seq)
    return ingested


# ---- shared by several test files (from tests/test_reload.py) ----

def serve_in_thread(server: Server) -> tuple[threading.Thread, trio.lowlevel.TrioToken]:
    ready = threading.Event()
    token: list[trio.lowlevel.TrioToken] = []

    async def run() -> None:
        token.append(trio.lowlevel.current_trio_token())
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            ready.set()

    thread = threading.Thread(target=trio.run, args=(run,), daemon=True)
    thread.start()
    assert ready.wait(30)
    return thread, token[0]


# ---- shared by several test files (from tests/test_evidence.py) ----

SEA_DECOY, ATL_DECOY, DC_DECOY, SEA_OUTREACH = (
    "+12065550100", "+14045550111", "+12025550122", "+12065550130")


OTHER_BUYER, VICTIM = "+13125550177", "+12065550166"


SEA_LINK, GENERAL_LINK = "https://www.seattleops.org", "https://www.sexhelp.com"


def config_text(tmp_path: Path) -> str:
    """The shipped cities and decoys, plus a Seattle outreach number; paths in tmp_path."""
    return f"""
[store]
path = "{tmp_path / 'intercept.db'}"
[http]
enabled = false
[delays]
enabled = false
[media]
enabled = false
[scenarios]
dir = "{SCENARIOS}"
[cities.seattle]
name = "Seattle"
link = "{SEA_LINK}"
[cities.atlanta]
name = "Atlanta"
link = "{GENERAL_LINK}"
[cities.washington-dc]
name = "Washington DC"
link = "{GENERAL_LINK}"
[[numbers]]
number = "{SEA_DECOY}"
city = "seattle"
scenario = "buyer-deterrence"
persona = {{ name = "Jasmine", age = 23 }}
[[numbers]]
number = "{ATL_DECOY}"
city = "atlanta"
scenario = "buyer-deterrence"
persona = {{ name = "Kayla", age = 21 }}
[[numbers]]
number = "{DC_DECOY}"
city = "washington-dc"
scenario = "buyer-deterrence"
persona = {{ name = "Mia", age = 24 }}
[[numbers]]
number = "{SEA_OUTREACH}"
city = "seattle"
scenario = "victim-outreach"
kind = "outreach"
persona = {{ name = "Maya" }}
"""


def load(tmp_path: Path) -> Any:
    from intercept.config import load_config

    path = tmp_path / "intercept.toml"
    path.write_text(config_text(tmp_path))
    return load_config(path, environ={})


async def text(server: Server, their: str, ours: str, body: str,
               media: tuple[str, ...] = ()) -> int:
    done = await server.gateway.inject(their_number=their, our_number=ours, text=body,
                                       media=media)
    await server.settled(done.conversation_id, done.conv_seq)
    return done.conversation_id


async def store_media(server: Server, conversation_id: int, content: bytes) -> str:
    """Pretend the fetcher stored the conversation's pending media with these bytes."""
    digest = hashlib.sha256(content).hexdigest()
    path = media_path(server.config.media_dir, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    for (media_id,) in server.store.query("SELECT id FROM media WHERE conversation_id = ? AND "
                                          "status = 'pending'", (conversation_id,)):
        await server.store.call(MediaStored(media_id, digest, "image/jpeg", len(content),
                                            server.clock.now()))
    return digest


PHOTO, VICTIM_PHOTO = b"\xff\xd8\xff buyer selfie", b"\xff\xd8\xff victim photo"


async def populate(tmp_path: Path) -> dict[str, Any]:
    """A buyer who texts Seattle and Atlanta, another in DC, and a victim who texted the
    outreach number (with a photo) and the Atlanta decoy."""
    config = load(tmp_path)
    out: dict[str, Any] = {"config": config}
    async with running(tmp_path, config, db="intercept.db", from_folder=True) as (server, _):
        sea = await text(server, BUYER, SEA_DECOY, "hey u available tonight?")
        await text(server, BUYER, SEA_DECOY, "can u do 100?")
        await text(server, BUYER, SEA_DECOY, "r u a cop?")
        await text(server, BUYER, SEA_DECOY, "here", media=("https://media.example.com/1",))
        out["photo"] = await store_media(server, sea, PHOTO)
        await trio.sleep(3600)
        atl = await text(server, BUYER, ATL_DECOY, "hi")
        await text(server, BUYER, ATL_DECOY, "are you a cop")
        await text(server, BUYER, ATL_DECOY, "whatever")
        dc = await text(server, OTHER_BUYER, DC_DECOY, "how much")
        outreach = await text(server, VICTIM, SEA_OUTREACH, "I need help, this is Ana",
                              media=("https://media.example.com/2",))
        out["victim_photo"] = await store_media(server, outreach, VICTIM_PHOTO)
        mixed = await text(server, VICTIM, ATL_DECOY, "hey whats the price")
        await trio.sleep(10)
        out.update(sea=sea, atl=atl, dc=dc, outreach=outreach, mixed=mixed, server=server)
        out["outreach_texts"] = [b for (b,) in server.store.query(
            "SELECT body FROM inbound WHERE conversation_id = ? UNION ALL SELECT body FROM "
            "outbox WHERE conversation_id = ?", (outreach, outreach))]
    return out


def cli(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(main, [*args[:2], "--config", str(tmp_path / "intercept.toml"),
                                     *args[2:]] if args[0] in ("buyers",) else
                              [args[0], "--config", str(tmp_path / "intercept.toml"),
                               *args[1:]], catch_exceptions=False)


# ---- shared by several test files (from tests/test_api.py) ----

ADMIN, ADVOCATE, VIEWER = ("admin-token-000000000001", "advocate-token-0000000002",
                           "viewer-token-000000000003")


TOKENS = f"admin:{ADMIN}:root,advocate:{ADVOCATE}:sam,viewer:{VIEWER}:val"


TOKEN = {"admin": ADMIN, "advocate": ADVOCATE, "viewer": VIEWER}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN[role]}"}


@dataclass
class Live:
    server: Server
    phones: Phones
    client: httpx.AsyncClient

    async def text(self, text: str, their: str = BUYER, ours: str = OUR) -> int:
        """`their` texts `ours` through the simulator; wait until the bot is done with it."""
        done = await self.server.gateway.inject(their_number=their, our_number=ours, text=text)
        with trio.fail_after(10):
            await self.server.settled(done.conversation_id, done.conv_seq, poll=0.005)
        return done.conversation_id

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.server.store.query(sql, params)


def echo_folder(tmp_path: Path) -> str:
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    (folder / "echo.yaml").write_text(ECHO)
    return str(folder)


@asynccontextmanager
async def serving(tmp_path: Path, *, tokens: str = TOKENS, reg: ScenarioRegistry | None = None,
                  scenario: str = "echo", api: dict[str, Any] | None = None
                  ) -> AsyncIterator[Live]:
    config = make_config(scenario, http={"enabled": True, "listen": "127.0.0.1:0"},
                         api={"tokens": tokens, **(api or {})},
                         scenarios={"dir": echo_folder(tmp_path)})
    gateway = SimGateway(receipts=True)
    phones = Phones(gateway)
    server = Server(config, registry=reg, gateway=gateway, store_path=tmp_path / "api.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        (base,) = server.http_addresses
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield Live(server, phones, client)
        server.stop()


# ---- shared by several test files (from tests/test_console.py) ----

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def login(client: httpx.AsyncClient, role: str, *, next_: str = "/") -> str:
    """Log `client` in with the token of `role`; the session's CSRF token."""
    page = await client.get("/login")
    assert page.status_code == 200
    token = CSRF.search(page.text)
    assert token is not None
    r = await client.post("/login", data={"csrf": token.group(1), "token": TOKEN[role],
                                          "next": next_})
    assert r.status_code == 303, r.text
    home = await client.get("/")
    assert home.status_code == 200
    found = CSRF.search(home.text)
    assert found is not None
    return found.group(1)


class Blob(Op):
    """A store write of `size` bytes (an audit row)."""

    __slots__ = ("size",)

    def __init__(self, size: int):
        self.size = size

    def apply(self, cur, cache):
        cur.execute("INSERT INTO audit (at, actor, role, action, status, detail) "
                    "VALUES (0, 'test', '', 'blob', 200, ?)", ("x" * self.size,))
