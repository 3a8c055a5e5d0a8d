"""The HTTP server: /healthz, /metrics after a chat, and the simulator's inbound endpoint."""

from __future__ import annotations

import sqlite3

import httpx
import trio

from intercept.gateways import SimGateway
from intercept.server import Server

from helpers import OTHER_OUR, OUR, Phones, make_config, registry

BUYER = "+12065550199"


async def start(nursery: trio.Nursery, tmp_path) -> tuple[Server, Phones, str]:
    config = make_config(http={"enabled": True, "listen": "127.0.0.1:0"})
    gateway = SimGateway(receipts=True)
    phones = Phones(gateway)
    server = Server(config, registry=registry(), gateway=gateway, store_path=tmp_path / "h.db")
    await nursery.start(server.run)
    (address,) = server.http_addresses
    return server, phones, address


async def test_metrics_after_a_chat(tmp_path):
    async with trio.open_nursery() as nursery:
        server, phones, base = await start(nursery, tmp_path)
        async with httpx.AsyncClient(base_url=base) as client:
            for i, text in enumerate(["hi", "how much", "bye"]):
                r = await client.post("/sim/messages", json={"from": BUYER, "to": OUR,
                                                             "text": text, "id": f"m{i}"})
                assert r.status_code == 200, r.text
                assert r.json()["sequence"] == i + 1
            with trio.fail_after(10):
                while len(phones.all) < 3:
                    await trio.sleep(0.01)
            received = (await client.get("/sim/messages", params={"to": BUYER})).json()
            assert [m["text"] for m in received["messages"]] == [
                "re: hi", "re: how much", "bye from Jasmine in Seattle"]
            assert received["messages"][0]["from"] == OUR
            assert (await client.get("/sim/messages", params={"to": "+13125550100"})
                    ).json() == {"messages": []}
            health = (await client.get("/healthz")).json()
            assert health["status"] == "ok" and health["gateway"] == "sim"
            r = await client.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            text = r.text
        expected = {
            "intercept_live_actors": None,
            "intercept_conversations_started_total": 1.0,
            'intercept_conversations_ended_total{outcome="finished"}': 1.0,
            "intercept_messages_in_total": 3.0,
            "intercept_messages_out_total": 3.0,
            "intercept_engine_step_seconds_count": 4.0,
            "intercept_actor_crashes_total": 0.0,
            "intercept_actor_restarts_total": 0.0,
            "intercept_actor_hibernations_total": 1.0,
            "intercept_actor_wakes_total": 1.0,
            "intercept_store_commit_seconds_count": None,
            "intercept_store_batch_size_count": None,
            "intercept_outbox_depth": 0.0,
        }
        values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                  for line in text.splitlines() if line and not line.startswith("#")}
        for name, value in expected.items():
            assert name in values, name
            if value is not None:
                assert values[name] == value, (name, values[name])
        server.stop()


async def test_sim_endpoint_checks_its_input(tmp_path):
    async with trio.open_nursery() as nursery:
        server, _, base = await start(nursery, tmp_path)
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.post("/sim/messages", json={"from": "12", "to": OUR, "text": "x"})
            assert r.status_code == 400 and "'from' is not a valid phone number" in r.text
            r = await client.post("/sim/messages", json={"from": BUYER, "to": OUR})
            assert r.status_code == 400 and "missing required field" in r.text
            r = await client.post("/sim/messages", content=b"{not json")
            assert r.status_code == 400
            r = await client.post("/sim/messages", json={"from": BUYER, "to": OUR,
                                                         "text": "x", "colour": "red"})
            assert r.status_code == 400 and "colour" in r.text
            assert (await client.delete("/sim/messages")).status_code == 405
            assert (await client.get("/nope")).status_code == 404
            first = await client.post("/sim/messages", json={"from": BUYER, "to": OUR,
                                                             "text": "hi", "id": "dup"})
            again = await client.post("/sim/messages", json={"from": BUYER, "to": OUR,
                                                             "text": "hi", "id": "dup"})
            assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
        server.stop()


async def test_sim_endpoint_refuses_numbers_that_are_not_ours_or_are_ours_twice(tmp_path):
    async with trio.open_nursery() as nursery:
        server, phones, base = await start(nursery, tmp_path)
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.post("/sim/messages", json={"from": BUYER, "to": "+13125550100",
                                                         "text": "hi"})
            assert r.status_code == 400, r.text
            assert "'to' +13125550100 is not one of our numbers" in r.json()["error"]
            r = await client.post("/sim/messages", json={"from": OTHER_OUR, "to": OUR,
                                                         "text": "hi"})
            assert r.status_code == 400, r.text
            assert f"'from' {OTHER_OUR} is one of our numbers" in r.json()["error"]
        server.stop()
    with sqlite3.connect(tmp_path / "h.db") as db:
        assert db.execute("SELECT count(*) FROM conversations").fetchone()[0] == 0
    assert phones.all == []
