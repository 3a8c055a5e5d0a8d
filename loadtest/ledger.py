"""Exact accounting of a load run: what each simulated buyer sent and what came back.

Every buyer message carries a tag, ``#<buyer>.<n>``, unique in the run. The generated echo
scenario answers each message with one reply that quotes it (``re: <text>``), so a reply names
the message it answers. The rules:

- a message of kind ``reply`` expects exactly one reply quoting its tag, from the number it was
  sent to; ``confirmation`` (a STOP) expects exactly one opt-out confirmation; ``none`` (a text
  sent after STOP) expects nothing at all;
- **lost**: an expectation with no answer when the run's drain period ends;
- **duplicates**: a reply received more than once (same identity: the provider's outbox id, or
  for SMPP the sender, recipient and text) plus a message answered by more than one distinct
  reply plus a second confirmation for one STOP;
- violations (also a failed run): a reply after the opt-out confirmation, a reply from a number
  the message was not sent to, a reply that names no message of this run.

Pure and synchronous except `wait()`, which a buyer awaits for its replies.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import trio

Kind = Literal["reply", "confirmation", "none"]
TAG = re.compile(r"#(\d+)\.(\d+)(?!\d)")


def tag(buyer: int, n: int) -> str:
    """The tag of message `n` of buyer `buyer`."""
    return f"#{buyer}.{n}"


@dataclass(slots=True)
class Expectation:
    """One buyer message and what became of it."""

    buyer: int
    n: int
    our: str
    kind: Kind
    behaviour: str
    sent_at: float
    answered_at: float | None = None
    answers: int = 0
    keys: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Reply:
    """A message one of the simulated phones received."""

    their: str
    """The phone (buyer) that received it."""
    our: str
    """Our number it came from."""
    text: str
    at: float
    key: str
    """Its identity: the provider's outbox id, else sender + recipient + text."""


class Histogram:
    """Log-bucketed latencies (2% wide buckets): cheap to add to, cheap to read a quantile."""

    RATIO = 1.02
    FLOOR = 1e-5

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        index = int(math.log(max(seconds, self.FLOOR) / self.FLOOR) / math.log(self.RATIO))
        self.counts[index] += 1
        self.count += 1
        self.max = max(self.max, seconds)

    def quantile(self, q: float) -> float | None:
        """The `q` quantile (0..1) to within 2%, or None without data."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(self.FLOOR * self.RATIO ** (index + 0.5), self.max)
        return self.max


class _Waiter:
    __slots__ = ("event", "remaining")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self.event = trio.Event()


class Ledger:
    """What was sent, what is still awaited, and every anomaly; see the module docstring."""

    def __init__(self, *, confirmation: str) -> None:
        self.confirmation = confirmation
        self.expected: dict[tuple[int, int], Expectation] = {}
        self.outstanding = 0
        self.sent = 0
        self.received = 0
        self.answered = 0
        self.latencies = array("d")
        self.sent_times = array("d")
        """When each text of `latencies` was sent (trio time): what `since` selects on."""
        self.histogram = Histogram()
        self.deliveries: Counter[str] = Counter()
        """Copies received of each reply identity."""
        self.duplicate_deliveries = 0
        self.double_answers = 0
        self.extra_confirmations = 0
        self.after_optout = 0
        self.misrouted = 0
        self.unexpected = 0
        self.send_failures = 0
        self.examples: dict[str, list[str]] = {}
        self._stopping: dict[str, tuple[int, int]] = {}
        """Phone -> its STOP message, while the STOP awaits its confirmation."""
        self._opted_out: set[str] = set()
        self._waiters: dict[tuple[int, int], _Waiter] = {}
        self.ignored: set[str] = set()
        """Phones outside the accounting (the warm-up conversation)."""
        self.ignored_replies = 0

    # -- the buyers' side

    def expect(self, buyer: int, n: int, *, their: str, our: str, kind: Kind, behaviour: str,
               now: float) -> None:
        """Record message `n` of `buyer` as sent now (before it is handed to the transport)."""
        key = (buyer, n)
        if key in self.expected:
            raise ValueError(f"message {tag(buyer, n)} was already sent: tags must be unique")
        self.expected[key] = Expectation(buyer, n, our, kind, behaviour, now)
        self.sent += 1
        if kind != "none":
            self.outstanding += 1
        if kind == "confirmation":
            self._stopping[their] = key

    def send_failed(self, buyer: int, n: int) -> None:
        """The transport could not hand the message over (it stays expected: lost if unmet)."""
        self.send_failures += 1
        self._example("send_failed", tag(buyer, n))

    async def wait(self, keys: list[tuple[int, int]], timeout: float) -> bool:
        """Wait until each message in `keys` has its answer, at most `timeout` s; True if so."""
        pending = [k for k in keys if self.expected[k].answers == 0
                   and self.expected[k].kind != "none"]
        if not pending:
            return True
        waiter = _Waiter(len(pending))
        for key in pending:
            self._waiters[key] = waiter
        with trio.move_on_after(timeout):
            await waiter.event.wait()
        for key in pending:
            self._waiters.pop(key, None)
        return waiter.event.is_set()

    # -- the phones' side

    def received_reply(self, reply: Reply) -> None:
        """Account for one message a phone received."""
        if reply.their in self.ignored:
            self.ignored_replies += 1
            return
        self.received += 1
        self.deliveries[reply.key] += 1
        if self.deliveries[reply.key] > 1:
            self.duplicate_deliveries += 1
            self._example("duplicate", reply.key)
            return
        if reply.text == self.confirmation:
            self._confirmation(reply)
            return
        tags = [(int(b), int(n)) for b, n in TAG.findall(reply.text)]
        known = [k for k in tags if k in self.expected]
        if not known:
            self.unexpected += 1
            self._example("unexpected", reply.text[:40])
            return
        if reply.their in self._opted_out:
            self.after_optout += 1
            self._example("after_optout", tag(*known[0]))
        for key in known:
            self._answer(self.expected[key], reply)

    def _confirmation(self, reply: Reply) -> None:
        stop = self._stopping.pop(reply.their, None)
        if stop is None:
            if reply.their in self._opted_out:
                self.extra_confirmations += 1
                self._example("extra_confirmation", reply.their[-4:])
            else:
                self.unexpected += 1
                self._example("unexpected", "a confirmation no STOP asked for")
            return
        self._opted_out.add(reply.their)
        self._answer(self.expected[stop], reply)

    def _answer(self, expectation: Expectation, reply: Reply) -> None:
        if expectation.kind == "none":
            return  # counted as after_optout by the caller
        if reply.our != expectation.our:
            self.misrouted += 1
            self._example("misrouted", tag(expectation.buyer, expectation.n))
        expectation.keys.add(reply.key)
        expectation.answers += 1
        if expectation.answers > 1:
            self.double_answers += 1
            self._example("double_answer", tag(expectation.buyer, expectation.n))
            return
        expectation.answered_at = reply.at
        self.outstanding -= 1
        self.answered += 1
        latency = max(0.0, reply.at - expectation.sent_at)
        self.latencies.append(latency)
        self.sent_times.append(expectation.sent_at)
        self.histogram.add(latency)
        waiter = self._waiters.pop((expectation.buyer, expectation.n), None)
        if waiter is not None:
            waiter.remaining -= 1
            if waiter.remaining <= 0:
                waiter.event.set()

    def _example(self, what: str, detail: str) -> None:
        found = self.examples.setdefault(what, [])
        if len(found) < 5:
            found.append(detail)

    # -- the verdict

    @property
    def duplicates(self) -> int:
        return self.duplicate_deliveries + self.double_answers + self.extra_confirmations

    @property
    def violations(self) -> int:
        return self.after_optout + self.misrouted + self.unexpected

    def lost(self) -> list[Expectation]:
        """Messages that expected an answer and have none (final once the run has drained)."""
        return [e for e in self.expected.values() if e.kind != "none" and e.answers == 0]

    def late(self, limit: float) -> int:
        """Answers that took longer than `limit` seconds."""
        return sum(1 for latency in self.latencies if latency > limit)

    def latencies_since(self, since: float) -> list[float]:
        """The latencies of the texts sent at or after `since` (trio time)."""
        return [latency for latency, sent in zip(self.latencies, self.sent_times, strict=True)
                if sent >= since]

    def percentiles(self, since: float | None = None) -> dict[str, float | None]:
        """Exact p50/p95/p99/max of the answers' latencies (of the texts sent from `since` on),
        in milliseconds."""
        return percentiles(self.latencies if since is None else self.latencies_since(since))


def percentiles(values: list[float] | array) -> dict[str, float | None]:
    """Exact p50/p95/p99/max of `values` (seconds), in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1000, 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99),
            "max": round(ordered[-1] * 1000, 3)}
