"""Retention: `Purge` in the writer removes exactly what is older than the cut-off, keeps the
impact report's figures, deletes media files nobody refers to, and is audited; the server's
schedule, the admin endpoint and `intercept purge`."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from click.testing import CliRunner

from intercept.buyers.media import media_path
from intercept.cli import main
from intercept.config import config_from_dict
from intercept.engine import compile_text
from intercept.gateways import SimGateway
from intercept.http.app import App
from intercept.scenarios import ScenarioRegistry
from intercept.server import Server
from intercept.store.advocacy import RecordOutcome
from intercept.store.media_ops import MediaStored
from intercept.store.report import impact_report
from intercept.store.retention import add_purged

from helpers import ADMIN_HEADERS, ADMIN_TOKENS, ECHO, OTHER_OUR, OUR, running, serve_in_thread

OUTREACH = "+12065550130"
A, B, C, S, V = ("+12065550191", "+12065550192", "+12065550193", "+12065550194",
                 "+12065550195")
DAY = 86400.0
DETER = """
name: deter
version: 1
start: wait
states:
  wait:
    expect:
      - otherwise: true
        goto: deter
  deter:
    tag: deterred
    say: "this was a decoy. help: {city.link}"
    end: deterred
"""
X, Y = b"\xff\xd8 shared photo", b"\xff\xd8 only A's photo"
TABLES = ("inbound", "outbox", "tags", "transitions", "media", "advocate_outcomes")


def config(tmp_path: Path, **sections: Any) -> Any:
    raw: dict[str, Any] = {
        "store": {"path": str(tmp_path / "r.db")},
        "cities": {"seattle": {"name": "Seattle", "link": "https://help.example/sea"},
                   "atlanta": {"name": "Atlanta", "link": "https://help.example/atl"}},
        "numbers": [
            {"number": OUR, "city": "seattle", "scenario": "deter",
             "persona": {"name": "Jasmine"}},
            {"number": OTHER_OUR, "city": "atlanta", "scenario": "echo",
             "persona": {"name": "Kayla"}},
            {"number": OUTREACH, "city": "seattle", "scenario": "echo", "kind": "outreach",
             "persona": {"name": "Maya"}}],
        "http": {"enabled": False}, "delays": {"enabled": False}, "media": {"enabled": False},
        "api": {"tokens": ADMIN_TOKENS},
        "health": {"interval": "1h"},  # half a year of mock time: hourly checks are enough
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw, environ={})


def reg() -> ScenarioRegistry:
    return ScenarioRegistry([compile_text(ECHO), compile_text(DETER)])


async def text(server: Server, their: str, ours: str, body: str,
               media: tuple[str, ...] = ()) -> int:
    done = await server.gateway.inject(their_number=their, our_number=ours, text=body,
                                       media=media)
    await server.settled(done.conversation_id, done.conv_seq)
    return done.conversation_id


async def store_media(server: Server, conversation_id: int, contents: list[bytes]) -> None:
    rows = server.store.query("SELECT id FROM media WHERE conversation_id = ? AND status = "
                              "'pending' ORDER BY position", (conversation_id,))
    for (media_id,), content in zip(rows, contents, strict=True):
        digest = hashlib.sha256(content).hexdigest()
        path = media_path(server.config.media_dir, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        await server.store.call(MediaStored(media_id, digest, "image/jpeg", len(content),
                                            server.clock.now()))


def report(server: Server) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{server.store.path}?mode=ro", uri=True)
    try:
        r = add_purged(conn, impact_report(conn, city_of={n.number: n.city for n in
                                                          server.config.numbers}))
        return {"cities": [c.as_json() for c in r.cities], "total": r.total.as_json()}
    finally:
        conn.close()


def count(server: Server, table: str, ids: list[int]) -> int:
    marks = ",".join("?" * len(ids))
    return server.store.query(f"SELECT count(*) FROM {table} WHERE conversation_id IN "
                              f"({marks})", tuple(ids))[0][0]


@pytest.mark.slow
async def test_purge_removes_exactly_what_is_older_and_keeps_the_report(tmp_path,
                                                                       autojump_clock):
    async with running(tmp_path, config(tmp_path), reg=reg(), db="r.db") as (server, _):
        old_a = await text(server, A, OUR, "hi", media=("https://m.example/x",
                                                        "https://m.example/y"))
        await store_media(server, old_a, [X, Y])
        old_b = await text(server, B, OTHER_OUR, "hello")
        await text(server, B, OTHER_OUR, "bye")
        old_s_buyer = await text(server, S, OUR, "hey")
        old_s_outreach = await text(server, S, OUTREACH, "hi")
        old_v = await text(server, V, OUTREACH, "I need help")
        await server.store.call(RecordOutcome(old_v, "meeting_scheduled", author="sam",
                                              now=server.clock.now()))
        await text(server, V, OUTREACH, "STOP")
        await trio.sleep(100 * DAY)
        recent_c = await text(server, C, OUR, "yo", media=("https://m.example/x2",))
        await store_media(server, recent_c, [X])
        assert await text(server, B, OTHER_OUR, "still there?") == old_b  # activity
        await trio.sleep(81 * DAY)  # A, S and V: 181 days idle; B: 81; C: 81
        assert server.store.query("SELECT count(*) FROM number_info")[0][0] == 4
        before = report(server)
        total = before["total"]
        assert (total["buyers"]["buyers"], total["buyers"]["conversations"],
                total["buyers"]["deterrence_sent"]) == (3, 3, 2)  # S: withheld
        assert (total["outreach"]["replied"], total["outreach"]["opted_out"],
                total["outreach"]["meetings"], total["outreach"]["handed_off"]) == (2, 1, 1, 1)
        api = httpx.AsyncClient(transport=httpx.ASGITransport(app=App(server)),
                                base_url="http://test", headers=ADMIN_HEADERS)
        r = await api.post("/api/purge", json={"older_than": "180d", "kind": "outreach",
                                               "dry_run": True})
        assert r.status_code == 200, r.text
        assert (r.json()["conversations"], r.json()["skipped"]) == (1, 1)  # S: shared
        assert server.store.query("SELECT count(*) FROM conversations")[0][0] == 6
        r = await api.post("/api/purge", json={"older_than": "180d"})
        body = r.json()
        assert (body["kind"], body["conversations"], body["dry_run"]) == ("buyer", 2, False)
        assert body["media"] == 2 and body["files_deleted"] == 1
        remaining = {row[0] for row in server.store.query("SELECT id FROM conversations")}
        assert remaining == {old_b, recent_c, old_s_outreach, old_v}
        for table in TABLES:
            assert count(server, table, [old_a, old_s_buyer]) == 0, table
        assert not media_path(server.config.media_dir, hashlib.sha256(Y).hexdigest()).exists()
        assert media_path(server.config.media_dir, hashlib.sha256(X).hexdigest()).exists()
        numbers = {n for (n,) in server.store.query("SELECT number FROM number_info")}
        assert numbers == {B, C, S}  # A's went with his last conversation; S still has one
        assert report(server) == before
        r = await api.post("/api/purge", json={"older_than": "180d", "kind": "outreach"})
        assert (r.json()["conversations"], r.json()["skipped"]) == (2, 0)
        assert {row[0] for row in server.store.query("SELECT id FROM conversations")} == {
            old_b, recent_c}
        for table in TABLES:
            assert count(server, table, [old_s_outreach, old_v]) == 0, table
        assert report(server) == before
        assert {n for (n,) in server.store.query("SELECT number FROM number_info")} == {B, C}
        assert server.store.query("SELECT opted_out FROM opt_outs WHERE number = ?",
                                  (V,)) == [(1,)]  # STOP is remembered
        audit = server.store.query("SELECT actor, action, status, detail FROM audit "
                                   "ORDER BY id")
        assert [(a, b, c) for a, b, c, _ in audit] == [("root", "POST /api/purge", 200)] * 3
        assert "dry run: outreach conversations idle for over 180d: 1 conversations" in (
            audit[0][3])
        assert "buyer conversations idle for over 180d: 2 conversations" in audit[1][3]
        assert all(n not in d for _, _, _, d in audit for n in (A, B, C, S, V))
        r = await api.post("/api/purge", json={"older_than": "12h"})
        assert r.status_code == 400 and "less than a day" in r.json()["error"]
        # a new message from A starts afresh: the writer's cache forgot the deleted ids
        fresh = await text(server, A, OUR, "hi again")
        assert fresh not in (old_a,) and server.store.query(
            "SELECT inbound_count FROM conversations WHERE id = ?", (fresh,)) == [(1,)]
        await api.aclose()


async def test_the_server_purges_on_its_schedule_and_audits(tmp_path, autojump_clock):
    cfg = config(tmp_path, retention={"buyer_after": "30d", "interval": "1d"})
    async with running(tmp_path, cfg, reg=reg(), db="r.db") as (server, _):
        old = await text(server, A, OTHER_OUR, "hello")
        await trio.sleep(29 * DAY)
        assert server.store.query("SELECT count(*) FROM conversations")[0][0] == 1
        await trio.sleep(2 * DAY + 60)
        assert server.store.query("SELECT id FROM conversations WHERE id = ?", (old,)) == []
        rows = server.store.query("SELECT actor, role, action, detail FROM audit "
                                  "WHERE detail LIKE '%1 conversations%'")
        assert rows and rows[0][:3] == ("retention", "server", "scheduled purge buyer")


def test_intercept_purge_calls_the_running_server(tmp_path):
    cfg = config(tmp_path, http={"enabled": True, "listen": "127.0.0.1:0"})
    server = Server(cfg, registry=reg(), gateway=SimGateway(), store_path=tmp_path / "r.db")
    thread, token = serve_in_thread(server)
    try:
        (base,) = server.http_addresses
        httpx.post(f"{base}/sim/messages", json={"from": A, "to": OUR, "text": "hi"})
        # no token given: the CLI uses the one the server wrote next to its store
        env = {"INTERCEPT_STORE_PATH": str(tmp_path / "r.db")}
        result = CliRunner().invoke(main, ["purge", "--url", base, "--older-than", "180d",
                                           "--dry-run"], env=env)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("would delete 0 buyer conversations idle since before")
        result = CliRunner().invoke(main, ["purge", "--url", base, "--older-than", "2d",
                                           "--kind", "outreach"], env=env)
        assert result.exit_code == 0 and "deleted 0 outreach conversations" in result.output
        bad = CliRunner().invoke(main, ["purge", "--url", base, "--older-than", "soon"],
                                 env=env)
        assert bad.exit_code == 1 and "older_than" in bad.output
    finally:
        trio.from_thread.run_sync(server.stop, trio_token=token)
        thread.join(30)
    rows = sqlite3.connect(tmp_path / "r.db").execute(
        "SELECT action, status FROM audit ORDER BY id").fetchall()
    assert rows == [("POST /api/purge", 200)] * 2 + [("POST /api/purge", 400)]


@pytest.mark.slow
async def test_a_message_replayed_after_a_purge_is_refused_until_its_tombstone_expires(
        tmp_path, autojump_clock, caplog):
    cfg = config(tmp_path, retention={"replay_guard": "30d"})
    async with running(tmp_path, cfg, reg=reg(), db="r.db") as (server, phones):
        first = await server.gateway.inject(their_number=A, our_number=OTHER_OUR, text="hi",
                                            gateway_id="SM0123456789")
        await server.settled(first.conversation_id, first.conv_seq)
        assert len(phones.all) == 1
        await trio.sleep(181 * DAY)
        result = await server.purge("buyer", 180 * DAY)
        assert (result.conversations, result.tombstones) == (1, 1)
        (stone,) = server.store.query("SELECT digest FROM tombstones")
        assert "SM0123456789" not in stone[0] and len(stone[0]) == 64  # hashed, nothing else
        again = await server.gateway.inject(their_number=A, our_number=OTHER_OUR, text="hi",
                                            gateway_id="SM0123456789")
        assert (again.duplicate, again.replay) == (True, True)
        assert server.store.query("SELECT count(*) FROM conversations")[0][0] == 0
        assert "purged by retention was delivered again (a replay): dropped" in caplog.text
        assert A not in caplog.text
        other = await text(server, A, OTHER_OUR, "new message, new id")  # not a replay
        assert other and len(phones.all) == 2
        await trio.sleep(31 * DAY)
        assert (await server.purge("buyer", 180 * DAY)).tombstones_expired == 1
        assert server.store.query("SELECT count(*) FROM tombstones")[0][0] == 0


@pytest.mark.slow
async def test_without_a_replay_guard_no_tombstones_are_kept(tmp_path, autojump_clock):
    cfg = config(tmp_path, retention={"replay_guard": ""})
    async with running(tmp_path, cfg, reg=reg(), db="r.db") as (server, _):
        await text(server, A, OTHER_OUR, "hi")
        await trio.sleep(181 * DAY)
        assert (await server.purge("buyer", 180 * DAY)).tombstones == 0
        assert server.store.query("SELECT count(*) FROM tombstones")[0][0] == 0
