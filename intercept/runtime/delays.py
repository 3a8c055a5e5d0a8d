"""Human-like reply timing: time to read the message, think, and type each reply.

Pure functions of the text lengths and a jitter value in [0, 1) derived from the outbox row id,
so a replayed step schedules its replies at the same times.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..config import DelayConfig


@dataclass(frozen=True, slots=True)
class DelayModel:
    enabled: bool = True
    read_cps: float = 25.0
    type_cps: float = 5.0
    think: float = 2.0
    minimum: float = 3.0
    maximum: float = 120.0
    jitter: float = 0.35
    scale: float = 1.0

    @classmethod
    def from_config(cls, config: DelayConfig, *, enabled: bool | None = None) -> DelayModel:
        return cls(enabled=config.enabled if enabled is None else enabled,
                   read_cps=config.read_cps, type_cps=config.type_cps,
                   think=float(config.think), minimum=float(config.min),
                   maximum=float(config.max), jitter=config.jitter,
                   scale=config.scale)

    def reply_offsets(self, inbound_text: str, replies: list[tuple[str, float, float]],
                      key: str) -> list[float]:
        """Seconds after the inbound message at which each reply goes out, in order.

        Each reply is (text, scale, extra): the scenario can slow a state down or speed it up
        (`scale`) and add a "busy" pause (`extra` seconds).
        """
        if not self.enabled:
            return [0.0] * len(replies)
        offsets = []
        elapsed = 0.0
        for i, (reply, scale, extra) in enumerate(replies):
            base = len(reply) / self.type_cps
            if i == 0:
                base += len(inbound_text) / self.read_cps + self.think
            u = zlib.crc32(f"{key}.{i}".encode()) / 0xFFFFFFFF
            delay = base * (1 + self.jitter * (2 * u - 1))
            delay = min(max(delay, self.minimum), self.maximum) * scale + extra
            elapsed += delay * self.scale
            offsets.append(elapsed)
        return offsets
