"""SMPP throughput over one bind, next to what the loopback connection itself can carry.

    python -m loadtest.smpp_bench                 # everything, ~1 minute
    python -m loadtest.smpp_bench --only submit   # submits/s at windows 1, 10, 100 + echo
    python -m loadtest.smpp_bench --only e2e --buyers 5000 --turns 4 [--profile]

The peers run in their own processes (this machine has two cores: one each):

1. **submit**: `SmppGateway.submit()` from enough concurrent tasks to keep the window full,
   against `python -m loadtest.smsc` (no receipts), at windows 1, 10 and 100;
2. **echo**: the limit of the same kind of connection against a trivial trio echo server, with
   `window` frames the size of that submit_sm in flight and writes coalesced the same way:
   once shaped like the client (a task per request waiting for its own answer, nothing decoded:
   the transport's cost), once as a raw byte pump (no per-frame work at all: the socket's);
   the SMPP figure divided by each is the ratio;
3. **e2e**: the whole server over one bind: simulated phones in the SMSC process text the
   echo persona and wait for each reply before the next (MO in → engine → store → reply out,
   with delivery receipts), through `Server` with a real SQLite file and group commit.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from intercept.config import Config, config_from_dict
from intercept.engine import compile_text
from intercept.gateways import DeliveryReceipt, InboundMessage, OutboundMessage, SimGateway
from intercept.gateways.smpp import SubmitSm, encode
from intercept.gateways.smpp.client import SmppGateway
from intercept.scenarios import ScenarioRegistry
from intercept.server import Server

OURS = ["+12065550100", "+14045550111"]
ECHO = """
name: echo
version: 1
start: wait
states:
  wait:
    expect:
      - otherwise: true
        goto: reply
  reply:
    say: "re: {message}"
    goto: wait
"""
SAMPLE_TEXT = "Hey, is this still available tonight? How much for an hour?"


class NullSink:
    async def inbound(self, message: InboundMessage) -> None:
        return None

    async def inbound_many(self, messages: list[InboundMessage]) -> list[None]:
        return [None] * len(messages)

    async def receipts(self, receipts: list[DeliveryReceipt]) -> None:
        return None


@contextmanager
def peer(*args: str):
    """A helper process that prints one JSON line with its port, then serves."""
    proc = subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{' '.join(args)} did not start")
        yield proc, json.loads(line)["port"]
    finally:
        proc.terminate()
        proc.wait(10)


# -- 1. submits over one bind


async def submit_rate(port: int, window: int, seconds: float) -> float:
    gateway = SmppGateway(host="127.0.0.1", port=port, system_id="intercept",
                          password="secret", window=window, registered_delivery=0)
    done = 0
    stop = False

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while not stop:
            i += 1
            await gateway.submit(OutboundMessage(
                outbox_id=f"{w}.{i}", our_number=OURS[0],
                their_number=f"+1206555{w % 10_000:04d}", text=SAMPLE_TEXT))
            done += 1

    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.run, NullSink())
        async with trio.open_nursery() as workers:
            for w in range(max(2, window * 2)):
                workers.start_soon(worker, w)
            await trio.sleep(0.3)  # warm up
            start, before = time.perf_counter(), done
            await trio.sleep(seconds)
            rate = (done - before) / (time.perf_counter() - start)
            stop = True
        nursery.cancel_scope.cancel()
    return rate


# -- 2. the raw loopback limit


async def echo_server(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    async def handle(stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def echo_rate(port: int, window: int, seconds: float) -> float:
    """Round trips/s with `window` frames in flight, writes coalesced, nothing decoded."""
    frame = encode(SubmitSm(sequence=1, source_addr_ton=1, source_addr_npi=1,
                            source_addr="12065550100", dest_addr_ton=1, dest_addr_npi=1,
                            destination_addr="12065550199",
                            short_message=SAMPLE_TEXT.encode()))
    size = len(frame)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    credits = window
    received_bytes = 0
    frames = 0
    wake = trio.Event()

    async def writer() -> None:
        nonlocal credits, wake
        while True:
            if not credits:
                wake = trio.Event()
                await wake.wait()
                continue
            batch, credits = credits, 0
            await stream.send_all(frame * batch)

    async def reader() -> None:
        nonlocal credits, received_bytes, frames
        while True:
            data = await stream.receive_some(65536)
            received_bytes += len(data)
            whole = received_bytes // size
            if whole > frames:
                credits += whole - frames
                frames = whole
                wake.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        nursery.start_soon(reader)
        await trio.sleep(0.3)
        start, before = time.perf_counter(), frames
        await trio.sleep(seconds)
        rate = (frames - before) / (time.perf_counter() - start)
        nursery.cancel_scope.cancel()
    await stream.aclose()
    return rate


async def tasks_echo_rate(port: int, window: int, seconds: float) -> float:
    """The same, but shaped like the client: a task per request awaiting its own echo (an
    Event found by sequence number), a window semaphore, one coalescing writer, a reader that
    splits frames by their length header. No SMPP encoding, decoding or bookkeeping."""
    template = bytearray(encode(SubmitSm(
        sequence=1, source_addr_ton=1, source_addr_npi=1, source_addr="12065550100",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="12065550199",
        short_message=SAMPLE_TEXT.encode())))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    pending: dict[int, trio.Event] = {}
    out: list[bytes] = []
    wake = trio.Event()
    slots = trio.Semaphore(window)
    done = 0
    sequence = 0

    async def writer() -> None:
        nonlocal out, wake
        while True:
            if not out:
                wake = trio.Event()
                await wake.wait()
                continue
            frames, out = out, []
            await stream.send_all(b"".join(frames))

    async def reader() -> None:
        buffer = b""
        while True:
            buffer += await stream.receive_some(65536)
            pos = 0
            while len(buffer) - pos >= 16:
                length = int.from_bytes(buffer[pos:pos + 4], "big")
                if len(buffer) - pos < length:
                    break
                seq = int.from_bytes(buffer[pos + 12:pos + 16], "big")
                pending.pop(seq).set()
                slots.release()
                pos += length
            buffer = buffer[pos:]

    async def worker() -> None:
        nonlocal done, sequence
        while True:
            await slots.acquire()
            sequence += 1
            template[12:16] = sequence.to_bytes(4, "big")
            event = pending[sequence] = trio.Event()
            out.append(bytes(template))
            wake.set()
            await event.wait()
            done += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        nursery.start_soon(reader)
        for _ in range(max(2, window * 2)):
            nursery.start_soon(worker)
        await trio.sleep(0.3)
        start, before = time.perf_counter(), done
        await trio.sleep(seconds)
        rate = (done - before) / (time.perf_counter() - start)
        nursery.cancel_scope.cancel()
    await stream.aclose()
    return rate


# -- 3. end to end through the server


def _config(synchronous: str) -> Config:
    return config_from_dict({
        "cities": {"seattle": {"name": "Seattle", "link": "https://help.example/sea"}},
        "numbers": [{"number": n, "city": "seattle", "scenario": "echo",
                     "persona": {"name": "Jasmine"}} for n in OURS],
        "http": {"enabled": False}, "delays": {"enabled": False},
        "runtime": {"hibernate_after": "1h"},
        "store": {"synchronous": synchronous},
    }, environ={})


def _statuses(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:  # its own reader: the writer thread owns the other one
        return dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status"))


async def end_to_end(buyers: int, turns: int, synchronous: str, profile: bool,
                     window: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(synchronous)
        with peer("loadtest.smsc", "--port", "0", "--buyers", str(buyers), "--turns",
                  str(turns), "--ours", ",".join(OURS)) as (proc, port):
            gateway = SmppGateway(host="127.0.0.1", port=port, system_id="intercept",
                                  password="secret", window=window)
            server = Server(config, registry=ScenarioRegistry([compile_text(ECHO)]),
                            gateway=gateway, store_path=Path(tmp) / "bench.db")
            profiler = cProfile.Profile() if profile else None
            cpu = time.process_time()
            async with trio.open_nursery() as nursery:
                await nursery.start(server.run)
                if profiler:
                    profiler.enable()
                assert proc.stdout is not None
                line = await trio.to_thread.run_sync(proc.stdout.readline)
                if profiler:
                    profiler.disable()
                cpu = time.process_time() - cpu
                with trio.move_on_after(5):  # the last receipts
                    while _statuses(Path(tmp) / "bench.db").get("delivered", 0) < buyers * turns:
                        await trio.sleep(0.1)
                outbox = _statuses(Path(tmp) / "bench.db")
                server.stop()
            stats = json.loads(line)
        stats["server_cpu_seconds"] = cpu
        stats["server_cpu_share"] = cpu / stats["seconds"]
        stats["receipts"] = gateway.metrics.receipts.labels("delivered")._value.get()
        stats["outbox"] = outbox
        if profiler:
            out = pstats.Stats(profiler).sort_stats("tottime")
            out.print_stats(25)
            out.sort_stats("cumulative").print_stats(
                r"smpp/|server.py|sender.py|actor.py|router.py|writer.py", 40)
        return stats


async def sim_baseline(buyers: int, turns: int, synchronous: str) -> float:
    """The same conversations through the in-process simulator: the runtime's own ceiling."""
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(synchronous)
        gateway = SimGateway(receipts=True)
        replied: dict[str, trio.Event] = {}

        def deliver(message: OutboundMessage) -> None:
            event = replied.pop(message.their_number, None)
            if event is not None:
                event.set()

        gateway.subscribe(deliver)
        server = Server(config, registry=ScenarioRegistry([compile_text(ECHO)]),
                        gateway=gateway, store_path=Path(tmp) / "sim.db")

        async def buyer(i: int) -> None:
            their = f"+1{300 + i // 10_000:03d}555{i % 10_000:04d}"
            for turn in range(turns):
                event = replied[their] = trio.Event()
                await gateway.inject(their_number=their, our_number=OURS[i % 2],
                                     text=f"line {turn} #{i}")
                await event.wait()

        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            start = time.perf_counter()
            async with trio.open_nursery() as phones:
                for i in range(buyers):
                    phones.start_soon(buyer, i)
            elapsed = time.perf_counter() - start
            server.stop()
        return buyers * turns / elapsed


async def main(args: argparse.Namespace) -> None:
    if args.echo_server:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(echo_server)
            print(json.dumps({"port": port}), flush=True)
        return
    print(f"SMPP over one bind on 127.0.0.1 (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores); peers in their own processes")
    if args.only in (None, "submit"):
        with peer("loadtest.smsc", "--port", "0", "--no-receipts") as (_, smsc_port), \
                peer("loadtest.smpp_bench", "--echo-server") as (_, echo_port):
            print("round trips per second over one TCP connection; ratio = SMPP / echo")
            print(f"{'window':>6}  {'SMPP submit_sm':>14}  {'echo, task each':>15}  ratio  "
                  f"{'echo, raw bytes':>15}  ratio")
            for window in (1, 10, 100):
                smpp = await submit_rate(smsc_port, window, args.seconds)
                tasks = await tasks_echo_rate(echo_port, window, args.seconds)
                raw = await echo_rate(echo_port, window, args.seconds)
                print(f"{window:>6}  {smpp:>14,.0f}  {tasks:>15,.0f}  {smpp / tasks:5.2f}  "
                      f"{raw:>15,.0f}  {smpp / raw:5.2f}", flush=True)
    if args.only in (None, "e2e"):
        stats = await end_to_end(args.buyers, args.turns, args.synchronous, args.profile,
                                 args.window)
        messages = stats["buyers"] * stats["turns"]
        print(f"end to end, {stats['buyers']:,} phones x {stats['turns']} turns over one bind "
              f"(window {args.window}, synchronous={args.synchronous}, receipts on):")
        print(f"  MO in -> reply out: {stats['mo_per_s']:,.0f} turns/s = "
              f"{stats['messages_per_s']:,.0f} messages/s (in + out), "
              f"{messages:,} each way in {stats['seconds']:.1f}s")
        print(f"  server process CPU {stats['server_cpu_share']:.0%} of one core, SMSC "
              f"{stats['smsc_cpu_share']:.0%}; "
              f"{stats['receipts']:,.0f} receipts; outbox afterwards: {stats['outbox']}")
    if args.only in (None, "sim"):
        sim = await sim_baseline(args.buyers, args.turns, args.synchronous)
        print(f"the same conversations through the in-process simulator (no SMPP; the phones "
              f"in the server process): {sim:,.0f} turns/s = {2 * sim:,.0f} messages/s")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.smpp_bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["submit", "e2e", "sim"])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--buyers", type=int, default=5000)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    parser.add_argument("--profile", action="store_true", help="cProfile the server (e2e)")
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    trio.run(main, parse())
