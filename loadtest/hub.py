"""The simulated network in a process of its own, for `intercept-loadtest --processes N`.

    python -m loadtest.hub --smpp-port 2775 --hub-port 2776 [--faults-json '{"error": 0.01}']

It runs the SMSC simulator (the server binds to `--smpp-port`) and a small hub on `--hub-port`
where buyer processes connect. Frames are msgpack arrays behind a 4-byte length:

- buyer -> hub: ``["mo", their, our, text, photo]``: a phone texts one of our numbers;
- hub -> buyer: ``["mt", their, our, text, at, key]``: a phone received a message; `at` is
  `time.perf_counter()` here when the SMSC accepted it (CLOCK_MONOTONIC: the same clock in every
  process of the machine), `key` its identity;
- buyer -> hub: ``["stats"]``; hub -> buyer: ``["stats", {...}]``: the network's counters.

A message for a phone goes to the connection that phone last texted through; one for a phone
no connection has texted is counted (`unrouted`) and dropped. `RemotePhones` is the buyers'
side: the `Phones` of a buyer process.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import trio

from intercept.foundation import collector
from loadtest.ledger import Reply
from loadtest.phones import SmppPhones

GENERATOR_SWEEP = 600.0
"""Seconds between the collector sweeps of a load generator process (`collector.keep_frozen`)."""

MAX_FRAME = 1 << 20
_LEN = struct.Struct(">I")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class FrameReader:
    """Length-prefixed frames from a stream; refuses frames above `MAX_FRAME`."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def frames(self):  # type: ignore[no-untyped-def]
        while True:
            while len(self.buffer) >= 4:
                (size,) = _LEN.unpack_from(self.buffer)
                if size > MAX_FRAME:
                    raise ValueError(f"a hub frame of {size:,} bytes (at most {MAX_FRAME:,})")
                if len(self.buffer) < 4 + size:
                    break
                frame = bytes(self.buffer[4:4 + size])
                del self.buffer[:4 + size]
                yield _decode(frame)
            data = await self.stream.receive_some(65536)
            if not data:
                return
            self.buffer += data


def frame(message: list[Any]) -> bytes:
    body = _encode(message)
    return _LEN.pack(len(body)) + body


class _Link:
    """One buyer process's connection: frames to it are batched into one send."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.pending: list[bytes] = []
        self.wake = trio.Event()

    def push(self, data: bytes) -> None:
        self.pending.append(data)
        self.wake.set()

    async def writer(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            data, self.pending = b"".join(self.pending), []
            if data:
                await self.stream.send_all(data)


class Hub:
    """The SMSC simulator and the buyer processes' connections."""

    def __init__(self, *, faults: dict[str, float], seed: int, rate_cap: float | None,
                 system_id: str, password: str, window: int = 100) -> None:
        self.phones = SmppPhones(self.on_reply, faults=faults, seed=seed, rate_cap=rate_cap,
                                 system_id=system_id, password=password, window=window)
        self.routes: dict[str, _Link] = {}
        self.unrouted = 0
        self.mo = 0
        self.mt = 0
        self.deliveries: Counter[str] = Counter()

    def on_reply(self, reply: Reply) -> None:
        self.mt += 1
        link = self.routes.get(reply.their)
        if link is None:
            self.unrouted += 1
            return
        link.push(frame(["mt", reply.their, reply.our, reply.text, time.perf_counter(),
                         reply.key]))

    def stats(self) -> dict[str, Any]:
        return {**self.phones.stats(), "faults": dict(self.phones.faults_injected),
                "hub_mo": self.mo, "hub_mt": self.mt, "unrouted": self.unrouted}

    async def serve(self, smpp_port: int, hub_port: int, *,
                    task_status: trio.TaskStatus[tuple[int, int]] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        async with trio.open_nursery() as nursery:
            smpp = await nursery.start(self.phones.serve, "127.0.0.1", smpp_port)
            listeners = await trio.open_tcp_listeners(hub_port, host="127.0.0.1")
            hub = listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, self.client, listeners)
            task_status.started((smpp, hub))

    async def client(self, stream: trio.SocketStream) -> None:
        link = _Link(stream)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.writer)
            try:
                async for message in FrameReader(stream).frames():
                    if message[0] == "mo":
                        _, their, our, text, photo = message
                        self.routes[their] = link
                        self.mo += 1
                        await self.phones.send(their, our, text, photo=bool(photo))
                    elif message[0] == "stats":
                        link.push(frame(["stats", self.stats()]))
            except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError):
                pass
            finally:
                for their in [t for t, found in self.routes.items() if found is link]:
                    del self.routes[their]
                nursery.cancel_scope.cancel()


class RemotePhones:
    """The `Phones` of a buyer process: texts go to the hub, replies come back from it."""

    name = "smpp"

    def __init__(self, on_reply: Callable[[Reply], None]) -> None:
        self.on_reply = on_reply
        self.faults_injected: Counter[str] = Counter()
        self.stream: trio.SocketStream | None = None
        self.network: dict[str, Any] = {}
        self._stats = trio.Event()
        self._link: _Link | None = None

    async def connect(self, port: int, *,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect to the hub on 127.0.0.1:`port` and deliver its replies until cancelled."""
        self.stream = await trio.open_tcp_stream("127.0.0.1", port)
        self._link = _Link(self.stream)
        clock_gap = time.perf_counter() - trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._link.writer)
            task_status.started()
            async for message in FrameReader(self.stream).frames():
                if message[0] == "mt":
                    _, their, our, text, at, key = message
                    self.on_reply(Reply(their=their, our=our, text=text, at=at - clock_gap,
                                        key=key))
                elif message[0] == "stats":
                    self.network = message[1]
                    self._stats.set()
            nursery.cancel_scope.cancel()

    async def send(self, their: str, our: str, text: str, *, photo: bool = False) -> bool:
        assert self._link is not None, "connect() first"
        self._link.push(frame(["mo", their, our, text, photo]))
        return True

    async def fetch_stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """The hub's counters (the network's view of the whole run)."""
        assert self._link is not None, "connect() first"
        self._stats = trio.Event()
        self._link.push(frame(["stats"]))
        with trio.move_on_after(timeout):
            await self._stats.wait()
        return self.network

    def stats(self) -> dict[str, Any]:
        return self.network


def main(argv: list[str] | None = None) -> None:
    import json

    from loadtest.target import PASSWORD, SYSTEM_ID

    p = argparse.ArgumentParser(prog="python -m loadtest.hub", description=__doc__.split("\n")[0])
    p.add_argument("--smpp-port", type=int, default=0)
    p.add_argument("--hub-port", type=int, default=0)
    p.add_argument("--faults-json", type=json.loads, default={},
                   help='probabilities per submit, e.g. {"throttle": 0.01}')
    p.add_argument("--rate-cap", type=float, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--window", type=int, default=100, help="the SMSC's deliver_sm window")
    p.add_argument("--system-id", default=SYSTEM_ID)
    p.add_argument("--password", default=PASSWORD)
    args = p.parse_args(argv)
    collector.tune()
    hub = Hub(faults=args.faults_json, seed=args.seed, rate_cap=args.rate_cap,
              system_id=args.system_id, password=args.password, window=args.window)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collector.keep_frozen, GENERATOR_SWEEP)  # as the server does
            smpp, port = await nursery.start(hub.serve, args.smpp_port, args.hub_port)
            print(f"hub ready smpp={smpp} hub={port}", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
