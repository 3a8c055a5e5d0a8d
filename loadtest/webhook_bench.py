"""Signed Twilio webhooks per second accepted end to end, beside a bare hypercorn app's ceiling.

    python -m loadtest.webhook_bench                  # the three runs, 10 s each
    python -m loadtest.webhook_bench --seconds 20 --connections 64 --json

Three runs against a server in its own process (this machine has two cores: the server gets
one, the load generator and the fake provider the other):

1. **bare**: a hypercorn app (trio worker, same settings as ours) that reads the body and
   answers 200 with a small body: the ceiling of the HTTP layer on this machine;
2. **intercept**: ``intercept serve`` with the Twilio gateway and the shipped config and
   scenarios, on a fresh SQLite file: each request is a webhook with its own MessageSid from one
   of `--buyers` numbers, signed like Twilio signs it; a 200 means the signature was checked and
   the message committed (the server answers only after the commit); the conversations then
   run and their replies go to a fake provider (``loadtest.fake_provider``) over REST;
3. **deferred**: the same, with reply delays of one to two hours, so that no reply is sent
   during the run: the webhook intake and the conversation steps alone.

The load generator speaks HTTP/1.1 over keep-alive sockets with pre-built requests (no client
library in the measured loop), so the server, not the generator, is what is measured. The
ratios are each run / bare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import trio

from intercept.gateways.twilio.signature import compute_signature
from intercept.http.app import answer_lifespan

ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-token-0123456789abcdef0123"
OURS = ["+12065550100", "+14045550111", "+12025550122"]
PATH = "/webhooks/twilio/messages"
TEXTS = ["hey u available tonight?", "how much for an hour", "r u a cop", "where r u located",
         "can u send a pic", "ok what time", "im on my way", "hello??"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_requests(port: int, count: int, buyers: int, *, seed: str) -> list[bytes]:
    """`count` signed webhook requests, each a distinct MessageSid, spread over `buyers`."""
    url = f"http://127.0.0.1:{port}{PATH}"
    requests = []
    for i in range(count):
        buyer = f"+1206{5550000 + 1000 + i % buyers:07d}"[:12]
        params = {"MessageSid": f"SM{seed}{i:024d}", "SmsSid": f"SM{seed}{i:024d}",
                  "AccountSid": ACCOUNT, "From": buyer, "To": OURS[i % buyers % len(OURS)],
                  "Body": TEXTS[(i // buyers) % len(TEXTS)], "NumMedia": "0",
                  "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
        body = urlencode(params).encode()
        signature = compute_signature(TOKEN, url, params.items())
        requests.append(
            b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode()
            + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: "
            + signature.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)
    return requests


class Load:
    """Keep-alive connections sending pre-built requests one after another."""

    def __init__(self, port: int, requests: list[bytes]):
        self.port = port
        self.requests = requests
        self.next = 0
        self.statuses: dict[int, int] = {}
        self.latencies: list[float] = []
        self.counting = False
        self.ok = 0

    async def connection(self) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        stream.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        async with stream:
            while self.next < len(self.requests):
                request = self.requests[self.next]
                self.next += 1
                started = time.perf_counter()
                await stream.send_all(request)
                status, buffer = await _read_response(stream, buffer)
                if self.counting:
                    self.latencies.append(time.perf_counter() - started)
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if status == 200:
                        self.ok += 1

    async def run(self, connections: int, seconds: float, warmup: float) -> dict[str, float]:
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(self.connection)
            await trio.sleep(warmup)
            self.counting = True
            started = time.perf_counter()
            await trio.sleep(seconds)
            self.counting = False
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        if self.next >= len(self.requests):
            raise SystemExit("ran out of pre-built requests: raise --requests")
        latencies = sorted(self.latencies) or [0.0]
        return {"per_second": self.ok / elapsed, "ok": self.ok,
                "other": sum(n for s, n in self.statuses.items() if s != 200),
                "p50_ms": statistics.median(latencies) * 1000,
                "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000}


async def _read_response(stream: trio.SocketStream, buffer: bytearray) -> tuple[int, bytearray]:
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = bytearray(rest)
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-body")
        body += chunk
    return status, body[length:]


# -- the bare app, run in its own process by `--bare PORT`

async def _bare_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/xml; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def serve_bare(port: int) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    trio.run(serve, _bare_app, config)


# -- orchestration

def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s")


def _pin(process: subprocess.Popen[bytes], cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(process.pid, {cpu})


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_bare(args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "loadtest.webhook_bench", "--bare",
                                str(port)])
    try:
        _pin(process, 0)
        _wait_for_port(port, process)
        requests = build_requests(port, args.requests, args.buyers, seed="0")
        return trio.run(Load(port, requests).run, args.connections, args.seconds, args.warmup)
    finally:
        _stop(process)


def write_config(folder: Path, port: int, provider_port: int, *, defer: bool = False) -> Path:
    from intercept.foundation.resources import bundled_root

    shipped = bundled_root() / "config" / "intercept.toml"
    text = shipped.read_text(encoding="utf-8")
    config = folder / "intercept.toml"
    scenarios = (shipped.parent / "../scenarios").resolve()
    gateway = (f'[gateway]\nurl = "twilio://{ACCOUNT}@127.0.0.1"\n'
               f'api_url = "http://127.0.0.1:{provider_port}"\n'
               f'public_url = "http://127.0.0.1:{port}"\nrate_per_number = 1000.0\n'
               f'http2 = false\n\n'
               f'[store]\npath = "{folder / "bench.db"}"\n\n'
               f'[http]\nlisten = "127.0.0.1:{port}"\n\n'
               f'[scenarios]\ndir = "{scenarios}"\n\n'
               f'[media]\ndir = "{folder / "media"}"\n\n'
               + ('[delays]\nmin = "1h"\nmax = "2h"\n\n' if defer else ''))
    kept = []
    skip = False
    for line in text.splitlines():
        if line.startswith("["):
            replaced = ["[gateway]", "[store]", "[http]", "[scenarios]", "[media]"]
            table = line.split("#", 1)[0].strip()
            skip = table in replaced + (["[delays]"] if defer else [])
        if not skip:
            kept.append(line)
    config.write_text(gateway + "\n".join(kept) + "\n", encoding="utf-8")
    return config


def run_intercept(args: argparse.Namespace, *, defer: bool = False) -> dict[str, float]:
    from loadtest.fake_provider import Callbacks, FakeTwilio

    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        folder = Path(tmp)
        port = free_port()
        provider = FakeTwilio(ACCOUNT, TOKEN, callbacks=Callbacks(enabled=False))

        async def main() -> dict[str, float]:
            async with trio.open_nursery() as nursery:
                provider_port = await nursery.start(provider.serve, "127.0.0.1", 0)
                config = write_config(folder, port, provider_port, defer=defer)
                env = {**os.environ, "INTERCEPT_GATEWAY_AUTH_TOKEN": TOKEN}
                wrap = os.environ.get("BENCH_WRAP", "").split()
                process = subprocess.Popen([*wrap, sys.executable, "-m", "intercept", "serve",
                                            "--config", str(config)], env=env)
                try:
                    _pin(process, 0)
                    await trio.to_thread.run_sync(_wait_for_port, port, process)
                    requests = build_requests(port, args.requests, args.buyers, seed="1")
                    result = await Load(port, requests).run(args.connections, args.seconds,
                                                            args.warmup)
                finally:
                    await trio.to_thread.run_sync(_stop, process)
                result["replies_sent"] = len(provider.sent)
                nursery.cancel_scope.cancel()
            return result

        return trio.run(main)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.webhook_bench", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m loadtest.webhook_bench\n"
               "  python -m loadtest.webhook_bench --seconds 20 --connections 128 --json")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured start of a run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--buyers", type=int, default=5000,
                        help="distinct phone numbers the webhooks come from")
    parser.add_argument("--requests", type=int, default=200_000,
                        help="pre-built requests per run (must outlast the run)")
    parser.add_argument("--only", choices=["bare", "intercept", "deferred"])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        serve_bare(args.bare)
        return
    results: dict[str, dict[str, float]] = {}
    if args.only in (None, "bare"):
        print("bare hypercorn app ...", file=sys.stderr, flush=True)
        results["bare"] = run_bare(args)
    if args.only in (None, "intercept"):
        print("intercept serve with signed Twilio webhooks ...", file=sys.stderr, flush=True)
        results["intercept"] = run_intercept(args)
    if args.only in (None, "deferred"):
        print("the same with every reply deferred past the run (intake and conversation "
              "steps only) ...", file=sys.stderr, flush=True)
        results["deferred"] = run_intercept(args, defer=True)
    if "bare" in results:
        results["ratio"] = {f"{name}_over_bare": results[name]["per_second"]
                            / results["bare"]["per_second"]
                            for name in ("intercept", "deferred") if name in results}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name in ("bare", "intercept", "deferred"):
        if name in results:
            r = results[name]
            print(f"{name:>10}: {r['per_second']:8,.0f} requests/s answered 200 "
                  f"(p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                  f"{int(r['other'])} other answers)"
                  + (f"; {int(r['replies_sent'])} replies sent to the provider"
                     if "replies_sent" in r else ""))
    for key, value in results.get("ratio", {}).items():
        print(f"{key.removesuffix('_over_bare'):>10}: {value:.0%} of the bare ceiling")


if __name__ == "__main__":
    main()
