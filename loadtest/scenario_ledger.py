"""Accounting for a load run of a real scenario (`intercept-loadtest --scenario`).

A real scenario merges fragments, answers some messages with several texts, sends nudges of its
own, ends conversations and delays its replies, so "which reply answers which text" has no
exact answer on the wire. The rules here are the ones that do hold, per conversation (one buyer
phone and one of our numbers):

- **answered**: every text that expects an answer (kind ``reply``) is followed by at least one
  reply in its conversation; the first reply after it answers it (and every earlier text still
  waiting: fragments merged into one message share their answer). A text with no reply when the
  run has drained is **unanswered**; one answered later than the bound (`--reply-timeout`) is
  **late**. Both fail the run.
- **no reply twice**: a reply identity received more than once (the provider: its outbox id;
  SMPP: sender, recipient and text, reconciled after the run against the store's outbox rows,
  since a persona may legitimately send the same short text twice), and a second opt-out
  confirmation, are **duplicates**.
- **opt-out**: a STOP (kind ``stop``) expects one confirmation (a reply matching
  `CONFIRMATION`); any reply after it is a violation (**after_optout**).
- **outcomes**: a reply carrying the deterrence marker (the city's link) ends the conversation
  as deterred; any reply after it is a violation (**after_end**). A text sent after the
  deterrence reached the network but before it reached the buyer expects nothing (it reached
  the server after the end: **crossed_end**, counted, not a failure). A buyer whose path should end
  in deterrence and that finished it without one is **outcome_missed**; a STOP never confirmed
  is **unconfirmed_stop**.
- a reply to a phone that never texted that number is **unexpected** (against a running server,
  a phone of an earlier run's conversations is left out: `earlier_replies`).

Pure and synchronous except `wait_reply()`, which a buyer awaits.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from loadtest.behaviours import buyer_index
from loadtest.ledger import Histogram, Reply

TextKind = Literal["reply", "stop", "none"]
CONFIRMATION = re.compile(r"\bunsubscribed\b|\bopted[ -]?out\b", re.IGNORECASE)
"""What an opt-out confirmation says (the config's `optout.confirmation` and the shipped
scenarios' `opt_out` texts both do)."""
STOP = re.compile(r"^\W*(?:stop|stop\s*all|unsubscribe|cancel|end|quit|revoke|opt[\s-]*out)\W*$",
                  re.IGNORECASE)


@dataclass(slots=True)
class Text:
    """One buyer text and when its first reply came."""

    n: int
    kind: TextKind
    sent_at: float
    answered_at: float | None = None


@dataclass(slots=True)
class FirstReply:
    """A reply that answered at least one text: for the latency figures."""

    reply: Reply
    text_sent_at: float
    """When the last text it answers was sent (the one that closed a merged burst)."""
    opening: bool
    """It answers the conversation's first text (stepped at once: no merge window)."""


@dataclass(slots=True)
class Conversation:
    """What one buyer phone said to one of our numbers, and what came back."""

    buyer: int
    their: str
    our: str
    path: str
    ends: str
    texts: list[Text] = field(default_factory=list)
    waiting: list[Text] = field(default_factory=list)
    replies: int = 0
    stop_sent: bool = False
    confirmed_at: float | None = None
    deterred_at: float | None = None
    said: set[str] = field(default_factory=set)
    """The texts the buyer sent (it varies a repeat: see `loadtest.scenario_run.VARIATIONS`)."""
    finished: bool = False
    """The buyer went through its whole path (not cut short by the end of the run)."""
    changed: trio.Event = field(default_factory=trio.Event)


class ScenarioLedger:
    """See the module docstring."""

    def __init__(self, *, bound: float, marker: str, exact_keys: bool = True) -> None:
        self.bound = bound
        self.marker = marker
        """Text that only the deterrence message carries (the city's link)."""
        self.exact_keys = exact_keys
        """Reply identities are unique (the provider's outbox ids); False over SMPP, where the
        run reconciles repeats with the store (`reconcile_repeats`)."""
        self.conversations: dict[tuple[str, str], Conversation] = {}
        self.ignored: set[str] = set()
        """Phones outside the accounting (the warm-up conversation)."""
        self.ignored_replies = 0
        self.earlier_phones = 0
        """Phones an earlier run against the same server texted from (a running server's):
        buyer indexes below this; their conversations go on there (timers, nudges), outside
        this run's accounting."""
        self.earlier_replies = 0
        self.sent = 0
        self.received = 0
        self.answered = 0
        self.outstanding = 0
        self.crossed_end = 0
        """Texts sent after the deterrence left the server and before it reached the buyer
        (the conversation had ended: no answer expected)."""
        self.unsolicited = 0
        """Replies that answered no text: further parts of an answer, nudges after a pause."""
        self.deliveries: Counter[str] = Counter()
        self.repeats = 0
        """Replies whose identity was seen before (duplicates when `exact_keys`)."""
        self.extra_confirmations = 0
        self.after_optout = 0
        self.after_end = 0
        self.unexpected = 0
        self.send_failures = 0
        self.outcome_missed = 0
        self.unconfirmed_stops = 0
        """STOPs that never got their confirmation (set by `finish`)."""
        self.store_duplicates = 0
        """SMPP: copies received beyond the outbox rows the store holds (`reconcile_repeats`)."""
        self.first_replies: list[FirstReply] = []
        self.merged: dict[str, Any] | None = None
        """Set by `merge`: the figures of ledgers kept in other processes."""
        self.latencies = array("d")
        self.histogram = Histogram()
        self.examples: dict[str, list[str]] = {}

    # -- the buyers' side

    def open(self, buyer: int, their: str, our: str, *, path: str, ends: str) -> Conversation:
        """A buyer starts texting `our` from `their`."""
        key = (their, our)
        if key in self.conversations:
            raise ValueError(f"{their[-4:]} -> {our[-4:]} was already used: each simulated "
                             "conversation needs its own pair of numbers")
        conv = self.conversations[key] = Conversation(buyer, their, our, path, ends)
        return conv

    def expect(self, conv: Conversation, kind: TextKind, now: float) -> Text:
        """Record a text as sent now (before the network has it)."""
        text = Text(len(conv.texts) + 1, kind, now)
        conv.texts.append(text)
        self.sent += 1
        if kind == "stop":
            conv.stop_sent = True
        if kind != "none":
            conv.waiting.append(text)
            self.outstanding += 1
        return text

    def send_failed(self, conv: Conversation) -> None:
        self.send_failures += 1
        self._example("send_failed", conv.their[-4:])

    async def wait_reply(self, conv: Conversation, seen: int, timeout: float) -> bool:
        """Wait until `conv` has more than `seen` replies, at most `timeout` s."""
        with trio.move_on_after(timeout):
            while conv.replies <= seen:
                await conv.changed.wait()
        return conv.replies > seen

    async def wait_quiet(self, conv: Conversation, quiet: float, limit: float) -> None:
        """Wait until no reply has come for `quiet` s (the rest of a multi-part answer), at
        most `limit` s."""
        with trio.move_on_after(limit):
            while True:
                seen = conv.replies
                with trio.move_on_after(quiet):
                    while conv.replies == seen:
                        await conv.changed.wait()
                if conv.replies == seen:
                    return

    # -- the phones' side

    def received_reply(self, reply: Reply) -> None:
        """Account for one message a phone received."""
        if reply.their in self.ignored:
            self.ignored_replies += 1
            return
        if self.earlier_phones and (reply.their, reply.our) not in self.conversations:
            index = buyer_index(reply.their)
            if index is not None and index < self.earlier_phones:
                self.earlier_replies += 1
                return
        self.received += 1
        self.deliveries[reply.key] += 1
        if self.deliveries[reply.key] > 1:
            self.repeats += 1
            if self.exact_keys:
                self._example("duplicate", reply.key[:60])
                return
        conv = self.conversations.get((reply.their, reply.our))
        if conv is None:
            self.unexpected += 1
            self._example("unexpected", f"to {reply.their[-4:]} from {reply.our[-4:]}")
            return
        conv.replies += 1
        conv.changed.set()
        conv.changed = trio.Event()
        if conv.confirmed_at is not None:
            if CONFIRMATION.search(reply.text):
                self.extra_confirmations += 1
                self._example("extra_confirmation", conv.their[-4:])
            else:
                self.after_optout += 1
                self._example("after_optout", f"{conv.their[-4:]}: {reply.text[:30]}")
            return
        if conv.deterred_at is not None:
            self.after_end += 1
            self._example("after_end", f"{conv.their[-4:]}: {reply.text[:30]}")
            return
        if conv.stop_sent and CONFIRMATION.search(reply.text):
            conv.confirmed_at = reply.at
        if self.marker and self.marker in reply.text:
            conv.deterred_at = reply.at
        self._answer(conv, reply)
        if conv.deterred_at is not None and conv.waiting:
            # sent while the deterrence was on its way: the conversation had ended when they
            # reached the server, which rightly says nothing more
            self.crossed_end += len(conv.waiting)
            self.outstanding -= len(conv.waiting)
            conv.waiting = []

    def _answer(self, conv: Conversation, reply: Reply) -> None:
        waiting = [t for t in conv.waiting if t.sent_at <= reply.at]
        if not waiting:
            self.unsolicited += 1
            return
        conv.waiting = [t for t in conv.waiting if t.sent_at > reply.at]
        for text in waiting:
            text.answered_at = reply.at
            self.outstanding -= 1
            self.answered += 1
        last = waiting[-1]
        latency = max(0.0, reply.at - last.sent_at)
        if latency > self.bound:
            self._example("late", f"{conv.path}: text {last.n} ({conv.their[-4:]} -> "
                          f"{conv.our[-4:]}) {latency:.1f} s")
        self.latencies.append(latency)
        self.histogram.add(latency)
        self.first_replies.append(FirstReply(reply, last.sent_at, waiting[0].n == 1))

    def _example(self, what: str, detail: str) -> None:
        found = self.examples.setdefault(what, [])
        if len(found) < 5:
            found.append(detail)

    # -- the verdict

    def finish(self) -> None:
        """Count the buyers that finished a path to deterrence without one (call once, after
        the drain)."""
        self.outcome_missed = self.unconfirmed_stops = 0
        for conv in self.conversations.values():
            if conv.finished and conv.ends == "deterred" and conv.deterred_at is None:
                self.outcome_missed += 1
                self._example("outcome_missed", f"{conv.path} ({conv.their[-4:]})")
            if conv.waiting:
                self._example("unanswered", f"{conv.path}: text {conv.waiting[0].n} of "
                              f"{len(conv.texts)} ({conv.their[-4:]} -> {conv.our[-4:]})")
            if conv.stop_sent and conv.confirmed_at is None:
                self.unconfirmed_stops += 1
                self._example("unconfirmed_stop", f"{conv.path} ({conv.their[-4:]})")

    def reconcile_repeats(self, rows: Counter[str]) -> None:
        """SMPP: `rows` counts the store's sent outbox rows by reply identity (sender >
        recipient: text); a copy received beyond them is a duplicate."""
        self.store_duplicates = 0
        for key, copies in self.deliveries.items():
            extra = copies - rows.get(key, 0)
            if extra > 0 and rows.get(key, 0) > 0:
                self.store_duplicates += extra
                self._example("duplicate", key[:60])

    @property
    def duplicates(self) -> int:
        copies = self.repeats if self.exact_keys else self.store_duplicates
        return copies + self.extra_confirmations

    def unanswered(self) -> int:
        if self.merged is not None:
            return int(self.merged["unanswered"])
        return sum(len(c.waiting) for c in self.conversations.values())

    def late(self) -> int:
        return sum(1 for latency in self.latencies if latency > self.bound)

    def first_reply_rows(self, wall_offset: float) -> list[tuple[str, float, float, bool]]:
        """Each first reply as (identity, latency s, wall-clock time it reached the network,
        left out of beyond_schedule: an opening or an opt-out confirmation)."""
        if self.merged is not None:
            return [tuple(row) for row in self.merged["first"]]  # type: ignore[misc]
        return [(f.reply.key, f.reply.at - f.text_sent_at, f.reply.at + wall_offset,
                 f.opening or bool(CONFIRMATION.search(f.reply.text)))
                for f in self.first_replies]

    COUNTS = ("sent", "received", "answered", "unsolicited", "crossed_end", "repeats",
              "extra_confirmations",
              "after_optout", "after_end", "unexpected", "send_failures", "outcome_missed",
              "unconfirmed_stops", "ignored_replies", "earlier_replies")

    def summary(self, wall_offset: float) -> dict[str, Any]:
        """Everything the verdict needs, as plain data (a buyer process sends it to the
        parent, which `merge`s them); call after `finish`."""
        return {**{name: getattr(self, name) for name in self.COUNTS},
                "unanswered": self.unanswered(), "latencies": list(self.latencies),
                "first": self.first_reply_rows(wall_offset),
                "repeated": {k: n for k, n in self.deliveries.items() if n > 1},
                "outcomes": self.outcomes(), "examples": self.examples}

    def merge(self, summaries: list[dict[str, Any]]) -> None:
        """Take the figures of the buyer processes' ledgers (their `summary`)."""
        merged: dict[str, Any] = {"unanswered": 0, "first": [], "outcomes": {}}
        for part in summaries:
            for name in self.COUNTS:
                setattr(self, name, getattr(self, name) + int(part[name]))
            merged["unanswered"] += int(part["unanswered"])
            merged["first"].extend(part["first"])
            merged["ramp_up_end"] = max(merged.get("ramp_up_end", 0.0),
                                        float(part.get("ramp_up_end", 0.0)))
            for latency in part["latencies"]:
                self.latencies.append(latency)
                self.histogram.add(latency)
            self.deliveries.update(part["repeated"])
            for path, row in part["outcomes"].items():
                into = merged["outcomes"].setdefault(path, Counter())
                into.update(row)
            for what, found in part["examples"].items():
                for detail in found:
                    self._example(what, detail)
        merged["outcomes"] = {k: dict(v) for k, v in sorted(merged["outcomes"].items())}
        self.merged = merged

    def violations(self) -> dict[str, int]:
        return {"unanswered": self.unanswered(), "late": self.late(),
                "after_optout": self.after_optout, "after_end": self.after_end,
                "unexpected": self.unexpected, "outcome_missed": self.outcome_missed,
                "unconfirmed_stop": self.unconfirmed_stops}

    def outcomes(self) -> dict[str, dict[str, int]]:
        """Per path: buyers, and what became of them (deterred, opted out, open, cut short
        by the end of the run)."""
        if self.merged is not None:
            return self.merged["outcomes"]  # type: ignore[no-any-return]
        out: dict[str, dict[str, int]] = {}
        for conv in self.conversations.values():
            row = out.setdefault(conv.path, {"buyers": 0, "deterred": 0, "opted_out": 0,
                                             "open": 0, "cut_short": 0})
            row["buyers"] += 1
            if conv.deterred_at is not None:
                row["deterred"] += 1
            elif conv.confirmed_at is not None:
                row["opted_out"] += 1
            elif not conv.finished:
                row["cut_short"] += 1
            else:
                row["open"] += 1
        return dict(sorted(out.items()))

