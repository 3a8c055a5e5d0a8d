"""`intercept serve` with INTERCEPT_GATEWAY_URL=smpp://… against the simulated SMSC, end to end."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from loadtest.smsc import Smsc

from helpers import ECHO, OUR

pytestmark = pytest.mark.slow  # real processes / real seconds: see README, Development

CONFIG = """
[store]
path = "{db}"
[http]
listen = "127.0.0.1:0"
[delays]
enabled = false
[scenarios]
dir = "scenarios"
[cities.seattle]
name = "Seattle"
link = "https://help.example"
[[numbers]]
number = "{our}"
city = "seattle"
scenario = "echo"
persona = {{ name = "Jasmine" }}
"""
BUYER = "+12065550177"


async def test_serve_over_smpp_end_to_end(tmp_path: Path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "echo.yaml").write_text(ECHO)
    db = tmp_path / "intercept.db"
    (tmp_path / "intercept.toml").write_text(CONFIG.format(db=db, our=OUR))
    smsc = Smsc(password="s3cret")
    log = tmp_path / "serve.log"
    async with trio.open_nursery() as nursery:
        await nursery.start(smsc.run)
        port = await nursery.start(smsc.serve_tcp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERCEPT_")}
        env |= {"INTERCEPT_GATEWAY_URL": f"smpp://intercept@127.0.0.1:{port}",
                "INTERCEPT_GATEWAY_PASSWORD": "s3cret"}
        with log.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "intercept", "serve", "--config",
                 str(tmp_path / "intercept.toml")],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=tmp_path)
        try:
            with trio.fail_after(30):
                await smsc.bound.wait()
                await smsc.deliver(BUYER, OUR, "hi there 😀")
                await smsc.deliver(BUYER, OUR, "Long message: " + "blah " * 60, mode="sar")
                replies = await smsc.wait_for(BUYER, 2)
            assert replies == ["re: hi there 😀", "re: Long message: " + "blah " * 60]
            with trio.fail_after(10):  # the receipts reach the outbox
                while _statuses(db) != {"delivered": 2}:
                    await trio.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await trio.to_thread.run_sync(proc.wait, 30)
        text = log.read_text()
        assert code == 0, text
        assert "SMPP bound to 127.0.0.1" in text
        assert "s3cret" not in text
        assert smsc.unbinds == 1  # a graceful stop unbinds
        nursery.cancel_scope.cancel()


def _statuses(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status"))
