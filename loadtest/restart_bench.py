"""Restart time with a large store: `intercept serve` start until it answers a new text.

    python -m loadtest.restart_bench --db /tmp/big.db --runs 3
    python -m loadtest.restart_bench --conversations 100000          # fills a temporary store

Each run starts `intercept serve` on the store (the shipped config and scenarios, the simulated
gateway, delays off), measures the time until /healthz answers and until a buyer's first text
(POST /sim/messages) has its answer (GET /sim/messages), then stops it with SIGTERM and measures
the shutdown. The figures are medians over the runs. Use a copy of a store you care about: each
run adds one conversation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import trio

from intercept.foundation.resources import bundled_root
from loadtest.fill_store import fill
from loadtest.target import ServerProcess, free_port, to_toml


def write_config(folder: Path, db: Path, port: int) -> Path:
    shipped = bundled_root() / "config" / "intercept.toml"
    config: dict[str, Any] = tomllib.loads(shipped.read_text(encoding="utf-8"))
    config["store"]["path"] = str(db)
    config["http"] = {"listen": f"127.0.0.1:{port}"}
    config["delays"]["enabled"] = False
    config["scenarios"] = {"dir": str((shipped.parent / "../scenarios").resolve())}
    path = folder / "restart.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    return path


async def one_run(db: Path, folder: Path, number: str) -> dict[str, float]:
    port = free_port()
    config = write_config(folder, db, port)
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess(config, {})
    try:
        healthy = await server.wait_healthy(base, timeout=300)
        async with httpx.AsyncClient(timeout=30) as client:
            ours = "+12065550100"
            response = await client.post(f"{base}/sim/messages", json={
                "from": number, "to": ours, "text": "hey u available?"})
            response.raise_for_status()
            while True:
                got = (await client.get(f"{base}/sim/messages", params={"to": number})).json()
                if got["messages"]:
                    break
                await trio.sleep(0.01)
        answered = time.monotonic() - server.started
        rss = server.sample().get("rss_mib", 0.0)
    finally:
        stopping = time.monotonic()
        status = await trio.to_thread.run_sync(server.stop)
        stopped = time.monotonic() - stopping
    return {"healthz_s": round(healthy, 3), "answered_s": round(answered, 3),
            "shutdown_s": round(stopped, 3), "rss_mib": round(rss, 1), "exit_status": status}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.restart_bench",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="a store filled by python -m loadtest.fill_store")
    parser.add_argument("--conversations", type=int, default=100_000,
                        help="without --db: fill a temporary store with this many")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="restart-bench-") as tmp:
        folder = Path(tmp)
        db = args.db
        if db is None:
            db = folder / "filled.db"
            fill(db, args.conversations)
        if not db.exists():
            sys.exit(f"restart_bench: {db} does not exist (make it with loadtest.fill_store)")
        runs = []
        for i in range(args.runs):
            result = trio.run(one_run, db.resolve(), folder, f"+1917555{i % 10_000:04d}")
            runs.append(result)
            print(json.dumps(result), flush=True)
    summary = {key: statistics.median(r[key] for r in runs)
               for key in ("healthz_s", "answered_s", "shutdown_s", "rss_mib")}
    print(json.dumps({"median": summary, "runs": len(runs), "db": str(args.db or "temporary")}))


if __name__ == "__main__":
    main()
