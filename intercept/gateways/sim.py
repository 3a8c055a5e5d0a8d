"""The simulated gateway: phones and a network inside the process (the embedded default).

Messages are injected with `inject()` (by `intercept chat`, the `/sim/messages` HTTP endpoint and
the tests); replies go to the handsets, which are callbacks, and optionally to a JSON-lines log
that also lets the simulator answer `reconcile()` truthfully after a crash.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path

import trio

from .base import (
    Accepted,
    DeliveryReceipt,
    Gateway,
    InboundMessage,
    OutboundMessage,
    Reconciled,
    Sink,
)

Handset = Callable[[OutboundMessage], None]


class SimGateway(Gateway):
    name = "sim"

    def __init__(self, *, log_path: str | os.PathLike[str] | None = None, receipts: bool = True,
                 recent: int = 1000):
        self.log_path = Path(log_path) if log_path else None
        self.receipts = receipts
        self.handsets: list[Handset] = []
        self.recent: deque[tuple[float, OutboundMessage]] = deque(maxlen=recent)
        """The last messages the simulated phones received (for GET /sim/messages)."""
        self._sink: Sink | None = None
        self._ready = trio.Event()
        self._logged: set[str] = set()
        self._log_fd: int | None = None
        self._receipt_send, self._receipt_receive = trio.open_memory_channel[DeliveryReceipt](
            10_000)
        self._ids = itertools.count(1)
        self._run_id = uuid.uuid4().hex[:8]

    def subscribe(self, handset: Handset) -> None:
        """Call `handset(message)` for every message the simulated network delivers."""
        self.handsets.append(handset)

    async def run(self, sink: Sink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        if self.log_path is not None:
            self._open_log()
        self._sink = sink
        self._ready.set()
        task_status.started()
        try:
            async for receipt in self._receipt_receive:
                batch = [receipt]
                while len(batch) < 1000:
                    try:
                        batch.append(self._receipt_receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                await sink.receipts(batch)
        finally:
            if self._log_fd is not None:
                os.close(self._log_fd)
                self._log_fd = None

    def _open_log(self) -> None:
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.log_path.exists():
            with self.log_path.open(encoding="utf-8") as lines:
                for line in lines:
                    try:
                        self._logged.add(json.loads(line)["outbox_id"])
                    except (ValueError, KeyError):
                        continue  # a line torn by a crash mid-write
        self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def inject(self, *, their_number: str, our_number: str, text: str,
                     gateway_id: str | None = None, media: tuple[str, ...] = ()) -> Accepted:
        """A simulated phone sends a message; returns once it is committed."""
        if not self._ready.is_set():
            await self._ready.wait()
        assert self._sink is not None
        message = InboundMessage(
            gateway_id=gateway_id or f"sim-in-{self._run_id}-{next(self._ids)}",
            our_number=our_number, their_number=their_number, text=text, media=media)
        return await self._sink.inbound(message)

    async def submit(self, message: OutboundMessage) -> str:
        gateway_id = f"sim-out-{message.outbox_id}"
        if self._log_fd is not None:
            record = {"outbox_id": message.outbox_id, "gateway_id": gateway_id,
                      "from": message.our_number, "to": message.their_number,
                      "text": message.text, "at": time.time()}
            os.write(self._log_fd, (json.dumps(record) + "\n").encode())
            self._logged.add(message.outbox_id)
        self.recent.append((time.time(), message))
        for handset in self.handsets:
            handset(message)
        if self.receipts:
            # receipts are best effort, on a real network too
            with contextlib.suppress(trio.WouldBlock):
                self._receipt_send.send_nowait(DeliveryReceipt(gateway_id, "delivered"))
        return gateway_id

    async def reconcile(self, message: OutboundMessage, *, since: float) -> Reconciled | None:
        if self.log_path is None:
            return None
        if message.outbox_id in self._logged:
            return Reconciled(sent=True, gateway_id=f"sim-out-{message.outbox_id}")
        return Reconciled(sent=False)
