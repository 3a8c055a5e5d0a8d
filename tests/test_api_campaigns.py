"""Campaigns through the admin API (roles, audit, progress) and `intercept campaign ...`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.gateways import SimGateway
from intercept.server import Server

from helpers import (
    ADMIN,
    SEND,
    TOKENS,
    VIEWER,
    add_ads,
    auth,
    outreach_config,
    serve_in_thread,
    shipped,
)

TARGETS = ["+12065550141", "+12065550142"]


def _server(tmp_path: Path) -> Server:
    add_ads(tmp_path / "api.db", TARGETS)
    config = outreach_config({"name": "spring", "window": "00:00-24:00", "rate": "5/s",
                              "rate_per_number": "5/s"},
                             http={"enabled": True, "listen": "127.0.0.1:0"},
                             api={"tokens": TOKENS})
    return Server(config, registry=shipped(), gateway=SimGateway(receipts=True),
                  store_path=tmp_path / "api.db")


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    server = _server(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        (base,) = server.http_addresses
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            yield server, client
        server.stop()


async def _status(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/api/campaigns", params={"name": "spring"}, headers=auth("viewer"))
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    return dict(item)


async def test_start_pause_and_progress_over_the_api(tmp_path):
    async with serving(tmp_path) as (server, client):
        item = await _status(client)
        assert {k: item[k] for k in ("name", "city", "status", "scenario", "numbers", "window",
                                     "targets", "texted", "held", "waiting", "started_at")} == {
            "name": "spring", "city": "seattle", "status": "idle", "scenario": "victim-outreach",
            "numbers": [SEND], "window": "00:00-24:00", "targets": 2, "texted": 0, "held": 0,
            "waiting": 2, "started_at": None}
        assert item["skipped"] == {"opted_out": 0, "recent": 0, "in_conversation": 0,
                                   "no_window": 0}
        r = await client.post("/api/campaigns/start", json={"name": "spring"},
                              headers=auth("advocate"))
        assert r.status_code == 403
        r = await client.post("/api/campaigns/start", json={"name": "spring"},
                              headers=auth("admin"))
        assert r.status_code == 200, r.text
        assert r.json()["previous"] == "idle"
        assert r.json()["campaign"]["status"] == "running"
        with trio.fail_after(10):
            while (await _status(client))["sent"] < 2:
                await trio.sleep(0.05)
        item = await _status(client)
        assert (item["texted"], item["queued"], item["failed"], item["waiting"]) == (2, 0, 0, 0)
        assert item["started_at"] is not None
        r = await client.post("/api/campaigns/pause", json={"name": "spring"},
                              headers=auth("admin"))
        assert (r.json()["previous"], r.json()["campaign"]["status"]) == ("running", "paused")
        r = await client.post("/api/campaigns/start", json={"name": "spring"},
                              headers=auth("admin"))
        assert r.json()["previous"] == "paused"
        for method, path, body, status, message in [
            ("GET", "/api/campaigns?name=autumn", None, 404,
             "no campaign 'autumn' in the config (campaigns: spring)"),
            ("POST", "/api/campaigns/start", {"name": "autumn"}, 404, "no campaign 'autumn'"),
            ("POST", "/api/campaigns/pause", {"name": "spring", "why": 1}, 400,
             "invalid request body: unknown field 'why'"),
            ("POST", "/api/campaigns/start", {"name": ""}, 400, "name: expected 'str' of "
                                                                "length >= 1"),
        ]:
            r = await client.request(method, path, json=body, headers=auth("admin"))
            assert r.status_code == status, (path, r.text)
            assert message in r.json()["error"], (path, r.json())
        audit = server.store.query("SELECT actor, action, status, detail FROM audit "
                                   "WHERE action LIKE '%campaigns%' ORDER BY id")
        assert audit[:4] == [
            ("sam", "POST /api/campaigns/start", 403,
             "this needs the admin role; the token 'sam' has the advocate role"),
            ("root", "POST /api/campaigns/start", 200, "campaign spring: was idle, now running"),
            ("root", "POST /api/campaigns/pause", 200, "campaign spring: was running, now paused"),
            ("root", "POST /api/campaigns/start", 200, "campaign spring: was paused, now running"),
        ]
        doc = (await client.get("/api/openapi.json")).json()
        assert doc["paths"]["/api/campaigns/start"]["post"]["x-intercept-role"] == "admin"
        assert doc["paths"]["/api/campaigns"]["get"]["x-intercept-role"] == "viewer"


def test_the_campaign_commands(tmp_path):
    server = _server(tmp_path)
    thread, token = serve_in_thread(server)
    try:
        (base,) = server.http_addresses

        def run(*args: str, key: str = ADMIN):
            return CliRunner().invoke(main, ["campaign", *args, "--url", base, "--token", key])

        result = run("status", key=VIEWER)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == [
            f"spring (seattle): idle; window 00:00-24:00 recipient's time; from {SEND}",
            "  targets 2: texted 0 (sent 0, queued 0, failed 0), held for quiet hours 0, "
            "waiting 2",
            "  skipped 0: opted out 0, contacted recently 0, in a conversation 0, no window 0",
            "  replied 0, handed off 0, opted out 0"]
        result = run("start", "spring", key=VIEWER)
        assert result.exit_code == 1 and "not allowed: this needs the admin role" in result.output
        result = run("start", "spring")
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Campaign spring is running (was idle).\n"
                                        "spring (seattle): running since ")
        for _ in range(200):  # the server texts in its own thread
            if "texted 2" in run("status", "spring").output:
                break
            time.sleep(0.05)
        result = run("status", "spring", "--json")
        assert result.exit_code == 0 and '"texted": 2' in result.output
        result = run("pause", "spring")
        assert result.output.startswith("Campaign spring is paused (was running).")
        result = run("start", "autumn")
        assert result.exit_code == 1
        assert "no campaign 'autumn' in the config (campaigns: spring)" in result.output
    finally:
        trio.from_thread.run_sync(server.stop, trio_token=token)
        thread.join(30)


async def test_number_health_is_served_to_viewers(tmp_path, autojump_clock):
    async with serving(tmp_path) as (_server, client):
        r = await client.get("/api/numbers/health", headers=auth("viewer"))
        assert r.status_code == 200
        doc = r.json()
        assert doc["window"] == "24h" and doc["checked_at"] is not None
        numbers = {item["number"]: item for item in doc["items"]}
        assert numbers[SEND] == {"number": SEND, "kind": "outreach", "settled": 0,
                                 "delivered": 0, "failed": 0, "failure_share": 0.0,
                                 "reasons": {}, "paused": False}
        assert (await client.get("/api/numbers/health")).status_code == 401
