"""Slow HTTP clients against `intercept serve`: are they closed, and does /healthz still answer?

    python -m loadtest.slow_clients_bench --clients 5000 --seconds 40
    python -m loadtest.slow_clients_bench --clients 5000 --nofile 1024 --hard   # no raising
    python -m loadtest.slow_clients_bench --clients 5000 --reconnect --monitor

Starts `intercept serve` (the shipped config, the simulated gateway) with a soft limit of
`--nofile` open files (systemd's default is 1,024; the server raises it to the hard limit unless
`--hard` pins both), then opens `--clients` connections that each send the headers of a POST
with a 1,000-byte body and then one byte every `--interval` seconds (with `--reconnect`, a
closed client connects again). Meanwhile /healthz is asked every 0.25 s with a 2 s timeout
(with `--monitor`, on ``http.monitor_listen``).
Prints one JSON object: /healthz latencies and failures, how many slow connections the server
closed and after how long, the most file descriptors the server held, and how many "Too many
open files" lines it logged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import trio

from intercept.foundation.resources import bundled_root
from loadtest.target import ServerProcess, free_port, to_toml

HEAD = (b"POST /sim/messages HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n{")


def write_config(folder: Path, port: int, http: dict[str, Any]) -> Path:
    shipped = bundled_root() / "config" / "intercept.toml"
    config: dict[str, Any] = tomllib.loads(shipped.read_text(encoding="utf-8"))
    config["store"]["path"] = str(folder / "slow.db")
    config["http"] = {"listen": f"127.0.0.1:{port}", **http}
    config["delays"]["enabled"] = False
    config["scenarios"] = {"dir": str((shipped.parent / "../scenarios").resolve())}
    path = folder / "slow.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    return path


class Tally:
    def __init__(self) -> None:
        self.closed: list[float] = []
        self.refused = 0
        self.health: list[float] = []
        self.health_failed = 0
        self.peak_fds = 0


async def slow_client(port: int, interval: float, tally: Tally, until: float,
                      reconnect: bool) -> None:
    while trio.current_time() < until:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            tally.refused += 1
            await trio.sleep(interval)
            continue
        started = trio.current_time()
        async with stream:
            try:
                await stream.send_all(HEAD)
                while trio.current_time() < until:
                    with trio.move_on_after(interval):
                        if await stream.receive_some(4096) == b"":
                            tally.closed.append(trio.current_time() - started)
                            break
                        continue
                    await stream.send_all(b" ")
            except (trio.BrokenResourceError, OSError):
                tally.closed.append(trio.current_time() - started)
        if not reconnect:
            return


async def probe(base: str, tally: Tally, until: float, pid: int) -> None:
    async with httpx.AsyncClient(timeout=2.0, limits=httpx.Limits(max_keepalive_connections=0)
                                 ) as client:
        while trio.current_time() < until:
            started = time.perf_counter()
            try:
                r = await client.get(f"{base}/healthz")
                r.raise_for_status()
                tally.health.append(time.perf_counter() - started)
            except httpx.HTTPError:
                tally.health_failed += 1
            with contextlib.suppress(OSError):
                tally.peak_fds = max(tally.peak_fds, len(os.listdir(f"/proc/{pid}/fd")))
            await trio.sleep(0.25)


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    port = free_port()
    http = {k: v for k, v in (("body_timeout", args.body_timeout),
                              ("max_connections", args.max_connections)) if v is not None}
    monitor_port = free_port() if args.monitor else None
    if monitor_port:
        http["monitor_listen"] = f"127.0.0.1:{monitor_port}"
    config = write_config(folder, port, http)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.nofile, hard), hard))
    try:
        server = ServerProcess(config, {})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the clients need many
    if args.hard:
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
    base = f"http://127.0.0.1:{port}"
    tally = Tally()
    try:
        await server.wait_healthy(base)
        until = trio.current_time() + args.seconds
        probed = f"http://127.0.0.1:{monitor_port}" if monitor_port else base
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe, probed, tally, until, server.pid)
            for i in range(args.clients):
                nursery.start_soon(slow_client, port, args.interval, tally, until,
                                   args.reconnect)
                if i % 100 == 99:
                    await trio.sleep(0.05)
    finally:
        await trio.to_thread.run_sync(server.stop)
    log = server.log_path.read_text(errors="replace")
    health = sorted(tally.health)
    return {
        "clients": args.clients, "seconds": args.seconds, "nofile": args.nofile,
        "hard": args.hard, "reconnect": args.reconnect, "monitor": args.monitor,
        "healthz_ok": len(health), "healthz_failed": tally.health_failed,
        "healthz_p50_ms": round(1000 * statistics.median(health), 1) if health else None,
        "healthz_max_ms": round(1000 * health[-1], 1) if health else None,
        "slow_closed": len(tally.closed),
        "closed_after_median_s": round(statistics.median(tally.closed), 2)
        if tally.closed else None,
        "closed_after_max_s": round(max(tally.closed), 2) if tally.closed else None,
        "connect_failed": tally.refused, "server_peak_fds": tally.peak_fds,
        "too_many_open_files_lines": log.count("Too many open files"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.slow_clients_bench",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between the body bytes of one client")
    parser.add_argument("--nofile", type=int, default=1024,
                        help="the server's soft limit on open files at start")
    parser.add_argument("--hard", action="store_true",
                        help="pin the hard limit too, so the server cannot raise it")
    parser.add_argument("--reconnect", action="store_true",
                        help="a closed client connects again until the end")
    parser.add_argument("--monitor", action="store_true",
                        help="ask /healthz on http.monitor_listen, a socket of its own")
    parser.add_argument("--body-timeout", help="http.body_timeout (default: the server's)")
    parser.add_argument("--max-connections", type=int,
                        help="http.max_connections (default: the server's)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="slow-clients-") as tmp:
        print(json.dumps(trio.run(run, args, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
