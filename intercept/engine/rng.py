"""Deterministic randomness carried in the conversation state (SplitMix64).

The engine never reads a global random source: a conversation's state holds a 64-bit counter,
so replaying the same events from the same state picks the same variants.
"""

from __future__ import annotations

import hashlib

_MASK = (1 << 64) - 1


def seed_from(text: str) -> int:
    """A stable 64-bit seed for a conversation key."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def next_value(state: int) -> tuple[int, int]:
    """Return (random 64-bit value, next state)."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31), state


def choose(state: int, n: int) -> tuple[int, int]:
    """An index in range(n) and the next state."""
    value, state = next_value(state)
    return value % n, state
