"""SIGKILL a real `intercept serve` mid-traffic, restart it, and check the durability contract.

No inbound message is lost, no reply is sent twice, conversations go on from the state they had,
and replies that were still waiting for their human-like delay go out after the restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow  # real processes / real seconds: see README, Development

OUR = "+12065550100"
BUYERS = [f"+1206555{2000 + i:04d}" for i in range(40)]
STEPS = 5

SCENARIO = """
name: steps
version: 1
start: s0
states:
""" + "".join(f"""
  s{i}:
    expect:
      - otherwise: true
        goto: r{i + 1}
  r{i + 1}:
    say: "reply {i + 1} to {{message}}"
    {'end: done' if i + 1 == STEPS else f'goto: s{i + 1}'}
""" for i in range(STEPS))

CONFIG = """
[gateway]
url = "sim://"
sim_log = "{log}"
[store]
path = "{db}"
[http]
listen = "127.0.0.1:0"
[delays]
enabled = true
think = "0s"
read_cps = 1000
type_cps = 1000
min = "0.4s"
max = "0.8s"
[scenarios]
dir = "scenarios"
[cities.seattle]
name = "Seattle"
link = "https://help.example"
[[numbers]]
number = "{our}"
city = "seattle"
scenario = "steps"
persona = {{ name = "Jasmine" }}
"""


class Serve:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.stderr = tmp / "serve.log"

    def start(self) -> str:
        self.stderr.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERCEPT_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "intercept", "serve", "--config",
             str(self.tmp / "intercept.toml")],
            stdout=subprocess.DEVNULL, stderr=self.stderr.open("w"), env=env, cwd=self.tmp)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"http (http://127\.0\.0\.1:\d+)", self.stderr.read_text())
            if match:
                return match.group(1)
            assert self.proc.poll() is None, self.stderr.read_text()
            time.sleep(0.05)
        raise AssertionError("the server did not start: " + self.stderr.read_text())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def post(base: str, their: str, step: int) -> bool:
    """Send one buyer message; True once the server acknowledged it (after its commit)."""
    try:
        r = httpx.post(f"{base}/sim/messages", timeout=5, json={
            "from": their, "to": OUR, "text": f"m{step}", "id": f"{their}-{step}"})
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def _queued(db: Path) -> bool:
    """Some reply is waiting for its delay (read beside the running server)."""
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM outbox WHERE status = 'queued'"
                                ).fetchone()[0] > 0
    except sqlite3.Error:
        return False


def quiet(db: Path) -> bool:
    with sqlite3.connect(db) as conn:
        unprocessed = conn.execute(
            "SELECT count(*) FROM conversations c WHERE c.processed_count < "
            "(SELECT max(conv_seq) FROM inbound i WHERE i.conversation_id = c.id)").fetchone()[0]
        unsent = conn.execute("SELECT count(*) FROM outbox WHERE status IN "
                              "('queued', 'sending')").fetchone()[0]
    return unprocessed == 0 and unsent == 0


def test_sigkill_mid_traffic_loses_nothing_and_sends_nothing_twice(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "steps.yaml").write_text(SCENARIO)
    log, db = tmp_path / "handset.jsonl", tmp_path / "intercept.db"
    (tmp_path / "intercept.toml").write_text(CONFIG.format(log=log, db=db, our=OUR))
    server = Serve(tmp_path)
    base = server.start()
    acked: set[tuple[str, int]] = set()
    with ThreadPoolExecutor(8) as pool:
        for step in range(2):
            for their, ok in zip(BUYERS, pool.map(lambda b, s=step: post(base, b, s), BUYERS),
                                 strict=True):
                assert ok
                acked.add((their, step))
        # Step 2 is in flight when the process dies: some posts land, some do not.
        futures = [pool.submit(post, base, their, 2) for their in BUYERS]
        # kill while replies wait for their human-like delay (a busy machine posts slowly)
        deadline = time.monotonic() + 20
        while not _queued(db) and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        for their, future in zip(BUYERS, futures, strict=True):
            if future.result():
                acked.add((their, 2))
    with sqlite3.connect(db) as conn:
        waiting = conn.execute("SELECT count(*) FROM outbox WHERE status = 'queued'").fetchone()[0]
        stored = {tuple(r) for r in conn.execute("SELECT their_number, gateway_id FROM inbound")}
    assert waiting > 0, "the kill should catch replies still waiting for their delay"
    assert {(their, f"{their}-{step}") for their, step in acked} <= stored  # acked => committed

    base = server.start()
    with ThreadPoolExecutor(8) as pool:
        for step in range(2, STEPS):  # resend what was not acknowledged, then carry on
            assert all(pool.map(lambda b, s=step: post(base, b, s), BUYERS))
    deadline = time.monotonic() + 30
    while not quiet(db):
        assert time.monotonic() < deadline, "replies did not all go out after the restart"
        time.sleep(0.1)
    assert server.stop() == 0

    records = [json.loads(line) for line in log.read_text().splitlines()]
    ids = [r["outbox_id"] for r in records]
    assert len(ids) == len(set(ids)), "a reply was sent twice"
    by_buyer: dict[str, list[str]] = {}
    for record in records:
        by_buyer.setdefault(record["to"], []).append(record["text"])
    for their in BUYERS:
        assert by_buyer[their] == [f"reply {i + 1} to m{i}" for i in range(STEPS)], their
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM inbound").fetchone()[0] == len(BUYERS) * STEPS
        outcomes = conn.execute("SELECT outcome, count(*) FROM conversations GROUP BY outcome")
        assert outcomes.fetchall() == [("done", len(BUYERS))]
        assert "stopped" in server.stderr.read_text()


def test_sighup_reloads_scenarios(tmp_path):
    (tmp_path / "scenarios").mkdir()
    scenario = tmp_path / "scenarios" / "steps.yaml"
    scenario.write_text(SCENARIO)
    log, db = tmp_path / "handset.jsonl", tmp_path / "intercept.db"
    (tmp_path / "intercept.toml").write_text(CONFIG.format(log=log, db=db, our=OUR))
    server = Serve(tmp_path)
    server.start()
    scenario.write_text(SCENARIO.replace("version: 1", "version: 2"))
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "scenarios reloaded: loaded steps v2" not in server.stderr.read_text():
        assert time.monotonic() < deadline, server.stderr.read_text()
        time.sleep(0.05)
    scenario.write_text("name: steps\nversion: 3\nstart: nowhere\nstates: {}\n")
    server.proc.send_signal(signal.SIGHUP)
    while "scenario reload refused" not in server.stderr.read_text():
        assert time.monotonic() < deadline, server.stderr.read_text()
        time.sleep(0.05)
    assert server.stop() == 0
