"""Reassembly of inbound concatenated messages (UDH or SAR), pure: time is passed in.

Parts are keyed by (source, destination, ref, total). They may come in any order; a part seen
twice is dropped. The octets of the parts are joined *before* decoding, so a sender that cut a
surrogate pair or an escape sequence across parts still reads correctly.

A message whose parts have not all arrived `timeout` seconds after its first part is given up
by `expire(now)`: it comes back with ``complete=False`` and the text that did arrive, each
missing part replaced by `missing_marker` ("[…]"), so the conversation still sees what the
person wrote and the marker shows that something is missing.

A finished message is remembered for another `timeout` seconds; a late copy of one of its parts
(same number, same octets, as when an SMSC redelivers) is reported as `Duplicate` instead of
starting a new message. A part with the same key but other content starts a new message.

Each part may carry an opaque `token` (e.g. the deliver_sm's sequence number); the
`Reassembled` result lists the tokens of every part it consumed, duplicates included, so the
caller can answer them all once the whole message is committed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .encoding import DefaultAlphabet, UserData, decode_text

MISSING_MARKER = "[…]"

_Key = tuple[str, str, int, int]


class Reassembled(msgspec.Struct, frozen=True, kw_only=True):
    """A whole message (or, from `expire`, what arrived of one)."""

    source: str
    destination: str
    text: str
    complete: bool = True
    ref: int | None = None
    """The concatenation reference; None for a message that was never split."""
    total: int = 1
    missing: tuple[int, ...] = ()
    """Numbers (1-based) of the parts that never came."""
    first_seen: float = 0.0
    data_coding: int = 0
    tokens: tuple[Any, ...] = ()


class Duplicate(msgspec.Struct, frozen=True):
    """A copy of a part of a message already finished: acknowledge it, deliver nothing."""

    token: Any = None


class _Pending:
    __slots__ = ("data_coding", "first_seen", "parts", "tokens", "total")

    def __init__(self, total: int, data_coding: int, first_seen: float):
        self.total = total
        self.data_coding = data_coding
        self.first_seen = first_seen
        self.parts: dict[int, bytes] = {}
        self.tokens: list[Any] = []


class Reassembler:
    """Collects the parts of concatenated messages until each message is whole.

    `max_pending` bounds memory: beyond it the oldest incomplete message is given up early and
    comes out of the next `expire()` call.
    """

    def __init__(self, *, timeout: float = 300.0, max_pending: int = 10_000,
                 missing_marker: str = MISSING_MARKER,
                 default_alphabet: DefaultAlphabet = "gsm7"):
        if timeout <= 0:
            raise ValueError(f"timeout is {timeout}; it must be positive (seconds).")
        if max_pending < 1:
            raise ValueError(f"max_pending is {max_pending}; it must be at least 1.")
        self.timeout = timeout
        self.max_pending = max_pending
        self.missing_marker = missing_marker
        self.default_alphabet = default_alphabet
        self._pending: dict[_Key, _Pending] = {}
        self._done: dict[_Key, tuple[float, dict[int, bytes]]] = {}
        self._evicted: list[Reassembled] = []

    def __len__(self) -> int:
        """Messages waiting for parts."""
        return len(self._pending)

    def add(self, source: str, destination: str, part: UserData, now: float,
            token: Any = None) -> Reassembled | Duplicate | None:
        """Take one inbound message or part.

        Returns the `Reassembled` message when this part completes it (at once for a message
        that was never split), a `Duplicate` for a late copy of a finished message's part, and
        None while parts are still missing (a copy of a part still waiting is absorbed: its
        token joins the message's tokens).
        """
        concat = part.concat
        if concat is None:
            return Reassembled(source=source, destination=destination, text=part.text,
                               first_seen=now, data_coding=part.data_coding,
                               tokens=() if token is None else (token,))
        key = (source, destination, concat.ref, concat.total)
        entry = self._pending.get(key)
        if entry is None:
            done = self._done.get(key)
            if done is not None:
                if done[1].get(concat.seq) == part.body:
                    return Duplicate(token)
                del self._done[key]
            if len(self._pending) >= self.max_pending:
                self._evict_oldest()
            entry = self._pending[key] = _Pending(concat.total, part.data_coding, now)
        if token is not None:
            entry.tokens.append(token)
        if concat.seq in entry.parts:
            return None
        entry.parts[concat.seq] = part.body
        if len(entry.parts) < entry.total:
            return None
        del self._pending[key]
        self._done[key] = (now, entry.parts)
        return self._result(key, entry)

    def forget(self, result: Reassembled) -> None:
        """Forget a finished message that could not be committed: when the SMSC delivers its
        parts again, they make a new message instead of being dropped as duplicates."""
        if result.ref is not None:
            self._done.pop((result.source, result.destination, result.ref, result.total), None)

    def expire(self, now: float) -> list[Reassembled]:
        """Give up on messages whose first part is `timeout` seconds old (or that were evicted).

        Each comes back with ``complete=False``, the text that arrived and markers for the rest,
        and is remembered like a finished message: a late copy of a part that did arrive is a
        `Duplicate` (an SMSC redelivers parts whose answers were held). Also forgets finished
        messages older than the timeout.
        """
        out, self._evicted = self._evicted, []
        deadline = now - self.timeout
        stale = []
        for key, entry in self._pending.items():
            if entry.first_seen > deadline:
                break
            stale.append(key)
        for key in stale:
            entry = self._pending.pop(key)
            self._done[key] = (now, entry.parts)  # a late copy of a part is then a Duplicate
            out.append(self._result(key, entry))
        old = []
        for key, (finished, _) in self._done.items():
            if finished > deadline:
                break
            old.append(key)
        for key in old:
            del self._done[key]
        return out

    def _evict_oldest(self) -> None:
        key = next(iter(self._pending))
        self._evicted.append(self._result(key, self._pending.pop(key)))

    def _decode(self, data: bytes, data_coding: int) -> str:
        return decode_text(data, data_coding, default_alphabet=self.default_alphabet)

    def _result(self, key: _Key, entry: _Pending) -> Reassembled:
        source, destination, ref, total = key
        parts = entry.parts
        if len(parts) == total:
            text = self._decode(b"".join(parts[i] for i in range(1, total + 1)),
                                entry.data_coding)
            missing: tuple[int, ...] = ()
        else:
            # Decode each run of consecutive parts as one, so pairs split across them survive.
            pieces: list[str] = []
            run: list[bytes] = []
            missing_list = []
            for seq in range(1, total + 1):
                body = parts.get(seq)
                if body is None:
                    if run:
                        pieces.append(self._decode(b"".join(run), entry.data_coding))
                        run = []
                    pieces.append(self.missing_marker)
                    missing_list.append(seq)
                else:
                    run.append(body)
            if run:
                pieces.append(self._decode(b"".join(run), entry.data_coding))
            text = "".join(pieces)
            missing = tuple(missing_list)
        return Reassembled(source=source, destination=destination, text=text,
                           complete=not missing, ref=ref, total=total, missing=missing,
                           first_seen=entry.first_seen, data_coding=entry.data_coding,
                           tokens=tuple(entry.tokens))
