"""The impact report: what outreach and deterrence achieved, per city (`intercept report`).

Plain read functions of a connection (the CLI opens the store read-only). Buyer figures come
only from the conversations `reads.BUYER_ONLY_SQL` admits, the same gate a law-enforcement
export uses, so a victim's conversation can never count as a buyer's. A conversation's city is
the city of our number in it (recorded at server start; the config's as a fallback).
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .campaigns import HANDED_OFF_SQL
from .reads import BUYER_ONLY_SQL

POSITIVE = ("positive_conversation", "meeting_scheduled", "connected_to_services")
"""Advocate outcomes that make a conversation positive."""
DETERRED = "deterred"
"""The outcome the shipped buyer scenarios end with, after the deterrence message."""
_OUT = "('sent', 'delivered')"


@dataclass(slots=True)
class Outreach:
    numbers_found: int = 0
    """Distinct numbers found in the city's ads."""
    contacted: int = 0
    """Distinct numbers a campaign's first text went out to (sent or delivered)."""
    replied: int = 0
    """Distinct numbers that wrote to an outreach number."""
    opted_out: int = 0
    """Of those in outreach conversations, numbers that opted out."""
    handed_off: int = 0
    """Outreach conversations that reached a human advocate."""
    positive: int = 0
    """Outreach conversations with a positive outcome (any of `POSITIVE`)."""
    meetings: int = 0
    """Outreach conversations with the outcome meeting_scheduled."""
    connected: int = 0
    """Outreach conversations with the outcome connected_to_services."""


@dataclass(slots=True)
class Buyers:
    buyers: int = 0
    """Distinct buyer numbers that texted a decoy."""
    conversations: int = 0
    messages_in: int = 0
    messages_out: int = 0
    """Our messages that went out (sent or delivered)."""
    deterred: int = 0
    """Conversations whose deterrence message went out (outcome `deterred`, last reply sent)."""
    lengths: list[int] = field(default_factory=list, repr=False)
    durations: list[float] = field(default_factory=list, repr=False)

    @property
    def messages(self) -> int:
        return self.messages_in + self.messages_out

    @property
    def median_length(self) -> float | None:
        """Messages per conversation (both ways), the median."""
        return statistics.median(self.lengths) if self.lengths else None

    @property
    def median_duration(self) -> float | None:
        """Seconds from a conversation's first message to its last: the time wasted."""
        return statistics.median(self.durations) if self.durations else None

    def add(self, other: Buyers) -> None:
        for name in ("buyers", "conversations", "messages_in", "messages_out", "deterred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.lengths += other.lengths
        self.durations += other.durations


@dataclass(slots=True)
class CityFigures:
    city: str
    outreach: Outreach = field(default_factory=Outreach)
    buyers: Buyers = field(default_factory=Buyers)

    def as_json(self) -> dict[str, Any]:
        b = self.buyers
        return {"city": self.city, "outreach": asdict(self.outreach), "buyers": {
            "buyers": b.buyers, "conversations": b.conversations,
            "messages_in": b.messages_in, "messages_out": b.messages_out,
            "messages": b.messages, "deterrence_sent": b.deterred,
            "median_length": b.median_length, "median_duration_seconds": b.median_duration}}


@dataclass(slots=True)
class Report:
    since: float | None
    cities: list[CityFigures]
    total: CityFigures


def impact_report(conn: sqlite3.Connection, *, since: float | None = None,
                  city: str | None = None, city_of: Mapping[str, str] | None = None) -> Report:
    """Per-city figures since `since` (epoch seconds; None: all time), for one `city` or all.

    `city_of` maps our numbers to cities for numbers the store does not know.
    """
    start = since if since is not None else float("-inf")
    known = dict(conn.execute("SELECT number, city FROM number_kinds"))
    fallback = dict(city_of or {})

    def city_of_number(number: str) -> str:
        return known.get(number) or fallback.get(number) or "unknown"

    cities: dict[str, CityFigures] = {}

    def figures(name: str) -> CityFigures:
        if name not in cities:
            cities[name] = CityFigures(name)
        return cities[name]

    for name, n in conn.execute("SELECT city, count(DISTINCT number) FROM found_numbers "
                                "WHERE first_seen >= ? GROUP BY 1", (start,)):
        figures(name).outreach.numbers_found = n
    for name, n in conn.execute(
            "SELECT t.city, count(DISTINCT t.number) FROM campaign_targets t WHERE "
            "t.status = 'sent' AND t.at >= ? AND EXISTS (SELECT 1 FROM outbox o WHERE "
            f"o.conversation_id = t.conversation_id AND o.kind = 'campaign' AND o.status IN "
            f"{_OUT}) GROUP BY 1", (start,)):
        figures(name).outreach.contacted = n
    replied: dict[str, set[str]] = {}
    opted: dict[str, set[str]] = {}
    for our, their, inbound, handed, kinds, out in conn.execute(
            f"SELECT c.our_number, c.their_number, c.inbound_count, {HANDED_OFF_SQL}, "
            "(SELECT group_concat(DISTINCT a.kind) FROM advocate_outcomes a WHERE "
            "a.conversation_id = c.id), EXISTS (SELECT 1 FROM opt_outs x WHERE "
            "x.number = c.their_number AND x.opted_out) FROM conversations c "
            "WHERE c.kind = 'outreach' AND c.created_at >= ?", (start,)):
        name = city_of_number(our)
        o = figures(name).outreach
        if inbound:
            replied.setdefault(name, set()).add(their)
        if out:
            opted.setdefault(name, set()).add(their)
        o.handed_off += bool(handed)
        outcomes = set((kinds or "").split(","))
        o.positive += bool(outcomes & set(POSITIVE))
        o.meetings += "meeting_scheduled" in outcomes
        o.connected += "connected_to_services" in outcomes
    for name, numbers in replied.items():
        figures(name).outreach.replied = len(numbers)
    for name, numbers in opted.items():
        figures(name).outreach.opted_out = len(numbers)
    engaged: dict[str, set[str]] = {}
    for row in conn.execute(
            "SELECT c.our_number, c.their_number, c.inbound_count, c.outcome, "
            "(SELECT min(received_at) FROM inbound i WHERE i.conversation_id = c.id), "
            "(SELECT max(received_at) FROM inbound i WHERE i.conversation_id = c.id), "
            f"(SELECT count(*) FROM outbox o WHERE o.conversation_id = c.id AND o.status IN "
            f"{_OUT}), "
            f"(SELECT min(sent_at) FROM outbox o WHERE o.conversation_id = c.id AND o.status "
            f"IN {_OUT}), "
            f"(SELECT max(sent_at) FROM outbox o WHERE o.conversation_id = c.id AND o.status "
            f"IN {_OUT}), "
            "(SELECT o.status FROM outbox o WHERE o.conversation_id = c.id AND o.kind = "
            "'reply' ORDER BY o.position DESC LIMIT 1) "
            f"FROM conversations c WHERE {BUYER_ONLY_SQL} AND c.created_at >= ?", (start,)):
        our, their, inbound, outcome, first_in, last_in, out, first_out, last_out, last = row
        if not inbound:
            continue
        name = city_of_number(our)
        b = figures(name).buyers
        engaged.setdefault(name, set()).add(their)
        b.conversations += 1
        b.messages_in += inbound
        b.messages_out += out
        b.deterred += outcome == DETERRED and last in ("sent", "delivered")
        b.lengths.append(inbound + out)
        times = [t for t in (first_in, last_in, first_out, last_out) if t is not None]
        b.durations.append(max(times) - min(times))
    for name, numbers in engaged.items():
        figures(name).buyers.buyers = len(numbers)
    chosen = [cities[k] for k in sorted(cities) if city is None or k == city]
    total = CityFigures("total")
    every_buyer: set[str] = set().union(*(engaged.get(c.city, set()) for c in chosen))
    for c in chosen:
        for name in ("numbers_found", "contacted", "replied", "opted_out", "handed_off",
                     "positive", "meetings", "connected"):
            setattr(total.outreach, name, getattr(total.outreach, name)
                    + getattr(c.outreach, name))
        total.buyers.add(c.buyers)
    total.buyers.buyers = len(every_buyer)
    return Report(since, chosen, total)


def messages_per_day(conn: sqlite3.Connection, *, since: float | None = None,
                     city: str | None = None, city_of: Mapping[str, str] | None = None
                     ) -> dict[str, dict[str, int]]:
    """City -> UTC day (``2024-05-01``) -> messages that day, both ways (ours only if they went
    out), of every conversation (buyer and outreach: counts only)."""
    start = since if since is not None else float("-inf")
    known = dict(conn.execute("SELECT number, city FROM number_kinds"))
    fallback = dict(city_of or {})
    out: dict[str, dict[str, int]] = {}
    for our, day, n in conn.execute(
            "SELECT our_number, date(received_at, 'unixepoch'), count(*) FROM inbound "
            "WHERE received_at >= ? GROUP BY 1, 2 UNION ALL "
            "SELECT c.our_number, date(o.sent_at, 'unixepoch'), count(*) FROM outbox o "
            "JOIN conversations c ON c.id = o.conversation_id "
            f"WHERE o.status IN {_OUT} AND o.sent_at >= ? GROUP BY 1, 2", (start, start)):
        name = known.get(our) or fallback.get(our) or "unknown"
        if day is None or (city is not None and name != city):
            continue
        days = out.setdefault(name, {})
        days[day] = days.get(day, 0) + n
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}
