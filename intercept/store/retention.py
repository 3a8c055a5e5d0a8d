"""Retention: delete conversations idle for longer than a cut-off, inside the single writer,
and keep their counts for the impact report (table ``purged``).

`Purge` removes, for every conversation of one kind whose last activity (created, updated,
last message in, last message out) is older than the cut-off: its inbound and outbox messages,
tags, funnel transitions, advocate outcomes and media rows, the conversation itself, and the
offline metadata and cached lookups of numbers left with no conversation at all. Media files
are shared by SHA-256: the op returns the hashes no media row refers to any more, and the
server deletes those files after the commit. It clears the writer's conversation cache.

Kept: the audit log, opt-outs (a number that said STOP must never be texted again), campaign
targets (who a campaign texted, so nobody is texted twice), ads and the numbers found in them.
Skipped: conversations with a reply still queued or being sent, and outreach conversations
whose number also has a buyer conversation (they keep that number out of buyer exports; they
go once the buyer conversations have gone).

Before deleting, the op adds what `store.report.impact_report` counted for those
conversations to ``purged``, one row per (kind, city, UTC day the conversation started), so
`add_purged` gives the report its figures unchanged. Distinct numbers (buyers, replied, opted
out, contacted) are counted in a row only when no remaining conversation of that city counts
them, on the day of their first purged conversation there; across cities a number may be
counted once per city in the total.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from sqlite3 import Connection, Cursor
from typing import Any, Literal

from . import tombstones
from .campaigns import HANDED_OFF_SQL
from .ops import Op, WriterCache
from .reads import BUYER_ONLY_SQL

Kind = Literal["buyer", "outreach"]
KINDS: tuple[Kind, ...] = ("buyer", "outreach")
_OUT = "('sent', 'delivered')"
_POSITIVE = ("positive_conversation", "meeting_scheduled", "connected_to_services")
_LAST_ACTIVITY = (
    "max(coalesce(c.created_at, 0), coalesce(c.updated_at, 0), "
    "coalesce((SELECT max(i.received_at) FROM inbound i WHERE i.conversation_id = c.id), 0), "
    "coalesce((SELECT max(coalesce(o.sent_at, o.created_at)) FROM outbox o "
    "WHERE o.conversation_id = c.id), 0))")


@dataclass(slots=True)
class PurgeResult:
    kind: str
    cutoff: float
    dry_run: bool
    conversations: int = 0
    messages_in: int = 0
    messages_out: int = 0
    media: int = 0
    """Media rows (photos) of those conversations."""
    skipped: int = 0
    """Old enough, but kept: a reply still to send, or (outreach) a number with buyer
    conversations."""
    unreferenced: list[str] = field(default_factory=list)
    """SHA-256 of media files no row refers to any more (the caller deletes them)."""
    files_deleted: int = 0
    tombstones: int = 0
    """Purged messages whose hashed ids are kept so a replay is refused (retention.replay_guard)."""
    tombstones_expired: int = 0


def purge_detail(result: PurgeResult, older_than: str) -> str:
    """A purge for the audit log: counts only, never a number or a text."""
    return (f"{'dry run: ' if result.dry_run else ''}{result.kind} conversations idle for over "
            f"{older_than}: {result.conversations} conversations, {result.messages_in} messages "
            f"in, {result.messages_out} out, {result.media} media rows, {result.files_deleted} "
            f"files deleted, {result.skipped} kept")


def _day(ts: float | None) -> str:
    return datetime.fromtimestamp(ts or 0.0, UTC).date().isoformat()


@dataclass(slots=True)
class _Agg:
    conversations: int = 0
    buyers: int = 0
    messages_in: int = 0
    messages_out: int = 0
    deterred: int = 0
    lengths: list[int] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    replied: int = 0
    opted_out: int = 0
    handed_off: int = 0
    positive: int = 0
    meetings: int = 0
    connected: int = 0
    contacted: int = 0


class Purge(Op):
    """Delete the conversations of `kind` idle since before `cutoff` (see the module)."""

    __slots__ = ("cutoff", "dry_run", "kind", "now", "replay_guard")

    def __init__(self, kind: Kind, *, cutoff: float, now: float, dry_run: bool = False,
                 replay_guard: float = 0.0):
        if kind not in KINDS:
            raise ValueError(f"kind must be buyer or outreach, not {kind!r}")
        self.kind, self.cutoff, self.now, self.dry_run = kind, cutoff, now, dry_run
        self.replay_guard = replay_guard
        """Seconds the tombstones of purged messages are kept (0: none are written)."""

    def apply(self, cur: Cursor, cache: WriterCache) -> PurgeResult:
        result = PurgeResult(self.kind, self.cutoff, self.dry_run)
        if not self.dry_run:
            result.tombstones_expired = tombstones.expire(cur, self.now - self.replay_guard)
        old = [r[0] for r in cur.execute(
            f"SELECT c.id FROM conversations c WHERE c.kind = ? AND {_LAST_ACTIVITY} < ? "
            "ORDER BY c.id", (self.kind, self.cutoff))]
        if not old:
            return result
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS purge_ids (id INTEGER PRIMARY KEY)")
        cur.execute("DELETE FROM temp.purge_ids")
        cur.executemany("INSERT INTO temp.purge_ids (id) VALUES (?)", [(i,) for i in old])
        keep = ("EXISTS (SELECT 1 FROM outbox o WHERE o.conversation_id = c.id AND o.status "
                "IN ('queued', 'sending'))")
        if self.kind == "outreach":
            keep += (" OR EXISTS (SELECT 1 FROM conversations b WHERE b.their_number = "
                     "c.their_number AND b.kind = 'buyer')")
        cur.execute(f"DELETE FROM temp.purge_ids WHERE id IN (SELECT c.id FROM conversations c "
                    f"JOIN temp.purge_ids p ON p.id = c.id WHERE {keep})")
        ids = "(SELECT id FROM temp.purge_ids)"
        result.skipped = len(old) - cur.execute("SELECT count(*) FROM temp.purge_ids"
                                                ).fetchone()[0]
        result.conversations = len(old) - result.skipped
        if not result.conversations:
            return result
        result.messages_in = cur.execute(
            f"SELECT count(*) FROM inbound WHERE conversation_id IN {ids}").fetchone()[0]
        result.messages_out = cur.execute(
            f"SELECT count(*) FROM outbox WHERE conversation_id IN {ids}").fetchone()[0]
        result.media = cur.execute(
            f"SELECT count(*) FROM media WHERE conversation_id IN {ids}").fetchone()[0]
        if self.dry_run:
            return result
        aggregates = (_buyer_counts(cur) if self.kind == "buyer" else _outreach_counts(cur))
        cur.executemany(
            "INSERT INTO purged (purged_at, kind, city, day, conversations, buyers, messages_in, "
            "messages_out, deterred, lengths, durations, replied, opted_out, handed_off, "
            "positive, meetings, connected, contacted) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(self.now, self.kind, city, day, a.conversations, a.buyers, a.messages_in,
              a.messages_out, a.deterred, json.dumps(a.lengths), json.dumps(a.durations),
              a.replied, a.opted_out, a.handed_off, a.positive, a.meetings, a.connected,
              a.contacted) for (city, day), a in sorted(aggregates.items())])
        hashes = [r[0] for r in cur.execute(
            f"SELECT DISTINCT sha256 FROM media WHERE conversation_id IN {ids} "
            "AND sha256 IS NOT NULL")]
        numbers = [r[0] for r in cur.execute(
            f"SELECT DISTINCT their_number FROM conversations WHERE id IN {ids}")]
        if self.replay_guard > 0:
            result.tombstones = tombstones.bury(cur, ids, self.now)
        for table in ("media", "inbound", "outbox", "tags", "transitions", "advocate_outcomes",
                      "handoff_notes", "handoffs"):
            cur.execute(f"DELETE FROM {table} WHERE conversation_id IN {ids}")
        cur.execute(f"DELETE FROM conversations WHERE id IN {ids}")
        for table in ("number_info", "lookup_cache"):
            cur.executemany(
                f"DELETE FROM {table} WHERE number = ? AND NOT EXISTS (SELECT 1 FROM "
                "conversations c WHERE c.their_number = ?)", [(n, n) for n in numbers])
        result.unreferenced = [h for h in hashes if cur.execute(
            "SELECT 1 FROM media WHERE sha256 = ? LIMIT 1", (h,)).fetchone() is None]
        cur.execute("DELETE FROM temp.purge_ids")
        cache.forget()  # the writer's cache of conversation ids must not name deleted ones
        return result


def _city_sql(column: str) -> str:
    return (f"coalesce((SELECT k.city FROM number_kinds k WHERE k.number = {column}), "
            "'unknown')")


def _first_uncounted(rows: list[tuple[str, str, str]], still_counted: set[tuple[str, str]],
                     aggs: dict[tuple[str, str], _Agg], attr: str) -> None:
    """Count each (city, number) of `rows` (city, number, day) once, on its first day, unless
    a remaining conversation still counts it."""
    first: dict[tuple[str, str], str] = {}
    for city, number, day in rows:
        key = (city, number)
        if key not in still_counted and (key not in first or day < first[key]):
            first[key] = day
    for (city, _), day in first.items():
        agg = aggs[(city, day)]
        setattr(agg, attr, getattr(agg, attr) + 1)


def _buyer_counts(cur: Cursor) -> dict[tuple[str, str], _Agg]:
    """What the impact report counts for the buyer conversations in temp.purge_ids."""
    aggs: dict[tuple[str, str], _Agg] = defaultdict(_Agg)
    numbers: list[tuple[str, str, str]] = []
    for row in cur.execute(
            f"SELECT {_city_sql('c.our_number')}, c.their_number, c.created_at, "
            "c.inbound_count, c.outcome, "
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
            f"FROM conversations c JOIN temp.purge_ids p ON p.id = c.id WHERE {BUYER_ONLY_SQL}"):
        city, their, created, inbound, outcome, first_in, last_in, out, first_out, last_out, \
            last = row
        if not inbound:
            continue
        day = _day(created)
        a = aggs[(city, day)]
        a.conversations += 1
        a.messages_in += inbound
        a.messages_out += out
        a.deterred += outcome == "deterred" and last in ("sent", "delivered")
        a.lengths.append(inbound + out)
        times = [t for t in (first_in, last_in, first_out, last_out) if t is not None]
        a.durations.append(max(times) - min(times))
        numbers.append((city, their, day))
    remaining = {(r[0], r[1]) for r in cur.execute(
        f"SELECT {_city_sql('c.our_number')}, c.their_number FROM conversations c "
        f"WHERE {BUYER_ONLY_SQL} AND c.inbound_count > 0 "
        "AND c.id NOT IN (SELECT id FROM temp.purge_ids)")}
    _first_uncounted(numbers, remaining, aggs, "buyers")
    return aggs


def _outreach_counts(cur: Cursor) -> dict[tuple[str, str], _Agg]:
    """What the impact report counts for the outreach conversations in temp.purge_ids."""
    aggs: dict[tuple[str, str], _Agg] = defaultdict(_Agg)
    replied: list[tuple[str, str, str]] = []
    opted: list[tuple[str, str, str]] = []
    for city, their, created, inbound, handed, kinds, out in cur.execute(
            f"SELECT {_city_sql('c.our_number')}, c.their_number, c.created_at, "
            f"c.inbound_count, {HANDED_OFF_SQL}, "
            "(SELECT group_concat(DISTINCT a.kind) FROM advocate_outcomes a WHERE "
            "a.conversation_id = c.id), EXISTS (SELECT 1 FROM opt_outs x WHERE "
            "x.number = c.their_number AND x.opted_out) FROM conversations c "
            "JOIN temp.purge_ids p ON p.id = c.id"):
        day = _day(created)
        a = aggs[(city, day)]
        a.conversations += 1
        if inbound:
            replied.append((city, their, day))
        if out:
            opted.append((city, their, day))
        a.handed_off += bool(handed)
        outcomes = set((kinds or "").split(","))
        a.positive += bool(outcomes & set(_POSITIVE))
        a.meetings += "meeting_scheduled" in outcomes
        a.connected += "connected_to_services" in outcomes
    rest = "c.kind = 'outreach' AND c.id NOT IN (SELECT id FROM temp.purge_ids)"
    city = _city_sql("c.our_number")
    _first_uncounted(replied, {(r[0], r[1]) for r in cur.execute(
        f"SELECT {city}, c.their_number FROM conversations c WHERE {rest} "
        "AND c.inbound_count > 0")}, aggs, "replied")
    _first_uncounted(opted, {(r[0], r[1]) for r in cur.execute(
        f"SELECT {city}, c.their_number FROM conversations c WHERE {rest} AND EXISTS "
        "(SELECT 1 FROM opt_outs x WHERE x.number = c.their_number AND x.opted_out)")},
        aggs, "opted_out")
    sent = ("t.status = 'sent' AND EXISTS (SELECT 1 FROM outbox o WHERE o.conversation_id = "
            f"t.conversation_id AND o.kind = 'campaign' AND o.status IN {_OUT})")
    contacted = [(r[0], r[1], _day(r[2])) for r in cur.execute(
        f"SELECT t.city, t.number, t.at FROM campaign_targets t WHERE {sent} AND "
        "t.conversation_id IN (SELECT id FROM temp.purge_ids)")]
    _first_uncounted(contacted, {(r[0], r[1]) for r in cur.execute(
        f"SELECT t.city, t.number FROM campaign_targets t WHERE {sent} AND "
        "t.conversation_id NOT IN (SELECT id FROM temp.purge_ids)")}, aggs, "contacted")
    return aggs


# -- the impact report's side


def add_purged(conn: Connection, report: Any, *, since: float | None = None,
               city: str | None = None) -> Any:
    """Add the counts of purged conversations to an `impact_report` result (in place; also
    returned). Rows are per UTC day: with `since` inside a day, that day's rows are left out.
    """
    from .report import CityFigures

    since_day = None if since is None else datetime.fromtimestamp(since, UTC)
    clauses, params = [], []
    if since_day is not None:
        first = since_day.date()
        if since_day.timestamp() > datetime(first.year, first.month, first.day,
                                            tzinfo=UTC).timestamp():
            first = date.fromordinal(first.toordinal() + 1)
        clauses.append("day >= ?")
        params.append(first.isoformat())
    if city is not None:
        clauses.append("city = ?")
        params.append(city)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    by_city = {c.city: c for c in report.cities}
    touched = False
    purged_buyers = 0
    for row in conn.execute(
            "SELECT kind, city, conversations, buyers, messages_in, messages_out, deterred, "
            "lengths, durations, replied, opted_out, handed_off, positive, meetings, connected, "
            f"contacted FROM purged{where} ORDER BY id", params):
        (kind, name, conversations, buyers, messages_in, messages_out, deterred, lengths,
         durations, replied, opted_out, handed_off, positive, meetings, connected,
         contacted) = row
        figures = by_city.get(name)
        if figures is None:
            figures = by_city[name] = CityFigures(name)
            report.cities.append(figures)
        touched = True
        if kind == "buyer":
            b = figures.buyers
            b.buyers += buyers
            purged_buyers += buyers
            b.conversations += conversations
            b.messages_in += messages_in
            b.messages_out += messages_out
            b.deterred += deterred
            b.lengths += json.loads(lengths or "[]")
            b.durations += json.loads(durations or "[]")
        else:
            o = figures.outreach
            o.replied += replied
            o.opted_out += opted_out
            o.handed_off += handed_off
            o.positive += positive
            o.meetings += meetings
            o.connected += connected
            o.contacted += contacted
    if not touched:
        return report
    report.cities.sort(key=lambda c: c.city)
    total = CityFigures("total")
    for c in report.cities:
        for name in ("numbers_found", "contacted", "replied", "opted_out", "handed_off",
                     "positive", "meetings", "connected"):
            setattr(total.outreach, name, getattr(total.outreach, name)
                    + getattr(c.outreach, name))
        total.buyers.add(c.buyers)
    total.buyers.buyers = report.total.buyers.buyers + purged_buyers  # live ones: a union
    report.total = total
    return report
