"""End to end: import ads -> campaign -> simulated replies -> hand-off -> an advocate replies
(take-over through the API) -> outcomes -> `intercept report` figures match exactly."""

from __future__ import annotations

import json
import sqlite3
import statistics
from pathlib import Path
from typing import Any

import httpx
import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.config import load_config
from intercept.gateways import SimGateway
from intercept.http.app import App
from intercept.runtime import clock as clock_module
from intercept.server import Server

from helpers import ADMIN_HEADERS, ADMIN_TOKENS, DECOY, SEND, Log, shipped, utc

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
YES, ASKS, STOPS, SILENT = "+12065550141", "+12065550142", "+12065550143", "+12065550144"
BUYER = "+12065550199"

CONFIG = """\
[store]
path = "{db}"

[http]
enabled = false

[delays]
enabled = false

[scenarios]
dir = "{scenarios}"

[cities.seattle]
name = "Seattle"
link = "https://help.example/sea"
timezone = "America/Los_Angeles"

[[numbers]]
number = "{decoy}"
city = "seattle"
scenario = "buyer-deterrence"
persona = {{ name = "Jasmine", age = 23 }}

[[numbers]]
number = "{send}"
city = "seattle"
scenario = "victim-outreach"
kind = "outreach"
persona = {{ name = "Maya" }}

[[campaigns]]
name = "spring"
city = "seattle"
numbers = ["{send}"]
rate = "1/m"
"""

ADS = [
    {"id": "1", "text": "new girl in town 💋 call 2O6-5five5-0one41", "posted_at": "2024-04-30"},
    {"id": "2", "text": "Ask for Lily: two zero six . 555 . 0142", "posted_at": "2024-04-30"},
    {"id": "3", "text": "incall only ❤ 2 0 6 5 5 5 0 1 4 3 ❤ $200"},
    {"id": "4", "text": "text me ２０６５５５０１４４ no police"},
    {"id": "1", "text": "new girl in town 💋 call 2O6-5five5-0one41"},  # seen again
]


class InlineReads:
    """The API's reads on the trio thread: a worker thread would let the mock clock jump."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, isolation_level=None)

    async def run(self, fn: Any, *args: Any) -> Any:
        self.conn.execute("BEGIN")
        try:
            return fn(self.conn, *args)
        finally:
            self.conn.execute("COMMIT")


async def _settle(server: Server, their: str, ours: str, text: str) -> int:
    done = await server.gateway.inject(their_number=their, our_number=ours, text=text)
    await server.settled(done.conversation_id, done.conv_seq)
    return done.conversation_id


async def test_import_campaign_replies_handoff_advocate_outcomes_report(
        tmp_path, autojump_clock, monkeypatch):
    db = tmp_path / "intercept.db"
    toml = tmp_path / "intercept.toml"
    toml.write_text(CONFIG.format(db=db, scenarios=SCENARIOS, decoy=DECOY, send=SEND))
    ads = tmp_path / "ads.jsonl"
    ads.write_text("\n".join(json.dumps(a, ensure_ascii=False) for a in ADS) + "\n")
    imported = CliRunner().invoke(main, ["ads", "import", str(ads), "--city", "seattle",
                                         "--config", str(toml)])
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.endswith("5 ads read: 4 new, 1 merged; numbers: 4 new, 0 known\n")

    monkeypatch.setattr(clock_module, "time",
                        type("T", (), {"time": staticmethod(lambda: utc(2024, 5, 1, 17))}))
    config = load_config(toml, environ={"INTERCEPT_API_TOKENS": ADMIN_TOKENS})
    server = Server(config, registry=shipped(), gateway=SimGateway(receipts=True),
                    threaded_store=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        log = Log(server)
        app = App(server.http_services)
        app.reads.close()
        app.api.reads = InlineReads(db)  # type: ignore[assignment]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://intercept", headers=ADMIN_HEADERS) as api:
            r = await api.post("/api/campaigns/start", json={"name": "spring"})
            assert r.status_code == 200, r.text
            assert r.json()["previous"] == "idle"
            await trio.sleep(10 * 60)
            status = (await api.get("/api/campaigns", params={"name": "spring"})).json()
            (item,) = status["items"]
            assert (item["targets"], item["texted"], item["sent"], item["held"]) == (4, 4, 4, 0)
            assert {r.message.their_number for r in log.campaign_texts()} == {
                YES, ASKS, STOPS, SILENT}

            yes = await _settle(server, YES, SEND, "Yes")
            asks = await _settle(server, ASKS, SEND, "who is this?")
            await _settle(server, ASKS, SEND, "ok yes")
            await _settle(server, STOPS, SEND, "Stop")
            assert "advocate" in log.to(ASKS)[1].message.text  # the scenario answered
            queue = (await api.get("/api/queue")).json()
            assert {i["conversation"]["id"] for i in queue["items"]} == {yes, asks}

            r = await api.post(f"/api/conversations/{yes}/messages",
                               json={"text": "Hi, this is Sam, an advocate. Are you safe?"})
            assert r.status_code == 200, r.text
            await trio.sleep(5)
            await _settle(server, YES, SEND, "yes, can we meet?")
            assert log.to(YES)[-1].message.text == "Hi, this is Sam, an advocate. Are you safe?"
            for cid, kind in ((yes, "positive_conversation"), (yes, "meeting_scheduled"),
                              (asks, "positive_conversation")):
                r = await api.post(f"/api/conversations/{cid}/outcomes", json={"kind": kind})
                assert r.status_code == 201, r.text

            buyer_start = server.clock.now()
            await _settle(server, BUYER, DECOY, "hey")
            await trio.sleep(120)
            await _settle(server, BUYER, DECOY, "i'll find you")
            await trio.sleep(600)
            (item,) = (await api.get("/api/campaigns")).json()["items"]
            assert (item["replied"], item["handed_off"], item["opted_out"]) == (3, 2, 1)
        buyer_in = 2
        buyer_out = [r for r in log.items if r.message.their_number == BUYER]
        assert buyer_out[-1].message.text.startswith("If you want to stop")
        server.stop()

    result = CliRunner().invoke(main, ["report", "--config", str(toml), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    (seattle,) = figures["cities"]
    assert seattle["city"] == "seattle"
    assert seattle["outreach"] == {
        "numbers_found": 4, "contacted": 4, "replied": 3, "opted_out": 1, "handed_off": 2,
        "positive": 2, "meetings": 1, "connected": 0}
    length = buyer_in + len(buyer_out)
    duration = buyer_out[-1].at - buyer_start
    assert seattle["buyers"] == {
        "buyers": 1, "conversations": 1, "messages_in": buyer_in,
        "messages_out": len(buyer_out), "messages": length, "deterrence_sent": 1,
        "median_length": length,
        "median_duration_seconds": statistics.median([duration])}
    assert figures["total"]["outreach"] == seattle["outreach"]
    table = CliRunner().invoke(main, ["report", "--config", str(toml), "--city", "seattle"])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "Impact report, all time, seattle"
    assert lines[3].split() == ["seattle", "4", "4", "3", "1", "2", "2", "1", "0"]
    assert lines[6].split()[:6] == ["seattle", "1", "1", str(length), "1", str(length)]
    # the conversations were on 2024-05-01 (mock time); the ads were imported now (real time)
    since = CliRunner().invoke(main, ["report", "--config", str(toml), "--json",
                                      "--since", "2024-05-02"])
    (later,) = json.loads(since.stdout)["cities"]
    assert later["outreach"] == {**{k: 0 for k in seattle["outreach"]}, "numbers_found": 4}
    assert later["buyers"]["conversations"] == 0
