"""Campaign operations for the single writer, and the reads of a campaign's progress.

A campaign's first text starts a conversation: `CampaignSend` re-checks, in the transaction
that creates it, that the number has not opted out, was not texted by a campaign within
`contact_again_after`, and is not in a conversation with us; then it inserts the conversation
(kind ``outreach``, its scenario state already past the opening text), the text as an outbox
row (kind ``campaign``), its tags and funnel transitions, and the campaign's target row, all
at once. A reply then finds the conversation like any other and continues the scenario.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from sqlite3 import Cursor

from .ops import FunnelMove, Op, OutboxRow, WriterCache

SKIP_REASONS = ("opted_out", "recent", "in_conversation", "no_window")
"""Why a target was not texted: opted out; texted by a campaign within contact_again_after;
already in a conversation with one of our outreach numbers (or every sending number has
talked with them before); no hour of the window is open in all of its possible time zones."""


class RegisterNumbers(Op):
    """Record the kind (buyer / outreach) and city of our numbers, from the config.

    A number that ever carried outreach conversations stays an outreach number: making it a
    buyer number again is refused (returns the problems and writes nothing). Conversations
    stored before kinds existed take their number's kind.
    """

    __slots__ = ("entries", "now")

    def __init__(self, entries: list[tuple[str, str, str]], *, now: float):
        self.entries, self.now = entries, now

    def apply(self, cur: Cursor, cache: WriterCache) -> list[str]:
        problems = []
        for number, kind, _ in self.entries:
            row = cur.execute("SELECT kind FROM number_kinds WHERE number = ?",
                              (number,)).fetchone()
            outreach = cur.execute("SELECT 1 FROM conversations WHERE our_number = ? AND "
                                   "kind = 'outreach' LIMIT 1", (number,)).fetchone()
            if kind != "outreach" and ((row is not None and row[0] == "outreach") or outreach):
                problems.append(f"{number} carried outreach conversations; it cannot become a "
                                f'{kind} number (kind = "outreach" must stay), so that victims\' '
                                "data never mixes with buyers'")
        if problems:
            return problems
        for number, kind, city in self.entries:
            cur.execute("INSERT INTO number_kinds (number, kind, city, updated_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET "
                        "kind = excluded.kind, city = excluded.city, "
                        "updated_at = excluded.updated_at", (number, kind, city, self.now))
            cur.execute("UPDATE conversations SET kind = ? WHERE our_number = ? AND kind IS NULL",
                        (kind, number))
        return []


class Unprocessed(Op):
    """The conversations of `numbers` with messages waiting to be processed (a number the
    config did not have: its messages were committed and wait until it is added)."""

    __slots__ = ("numbers",)

    def __init__(self, numbers: list[str]):
        self.numbers = numbers

    def apply(self, cur: Cursor, cache: WriterCache) -> list[int]:
        if not self.numbers:
            return []
        marks = ",".join("?" * len(self.numbers))
        return [r[0] for r in cur.execute(
            f"SELECT id FROM conversations WHERE our_number IN ({marks}) AND status IN "
            "('new', 'active', 'handed_off') AND inbound_count > processed_count",
            self.numbers)]


@dataclass(frozen=True, slots=True)
class CampaignsState:
    status: dict[str, str]
    """campaign -> running | paused."""
    last_by_number: dict[str, float]
    """Our number -> when a campaign last texted from it."""
    last_by_campaign: dict[str, float]


class LoadCampaigns(Op):
    """The persisted state of every campaign, to resume after a restart."""

    __slots__ = ()

    def apply(self, cur: Cursor, cache: WriterCache) -> CampaignsState:
        return CampaignsState(
            dict(cur.execute("SELECT name, status FROM campaigns")),
            dict(cur.execute("SELECT our_number, max(at) FROM campaign_targets "
                             "WHERE status = 'sent' GROUP BY 1")),
            dict(cur.execute("SELECT campaign, max(at) FROM campaign_targets "
                             "WHERE status = 'sent' GROUP BY 1")))


class SetCampaignStatus(Op):
    """Start (``running``) or pause a campaign; returns its previous status (None: never)."""

    __slots__ = ("actor", "name", "now", "status")

    def __init__(self, name: str, status: str, *, actor: str, now: float):
        self.name, self.status, self.actor, self.now = name, status, actor, now

    def apply(self, cur: Cursor, cache: WriterCache) -> str | None:
        row = cur.execute("SELECT status FROM campaigns WHERE name = ?", (self.name,)).fetchone()
        if row is None:
            cur.execute("INSERT INTO campaigns (name, status, started_at, updated_at, actor) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (self.name, self.status, self.now if self.status == "running" else None,
                         self.now, self.actor))
            return None
        if row[0] != self.status:
            cur.execute("UPDATE campaigns SET status = ?, updated_at = ?, actor = ?, "
                        "started_at = coalesce(started_at, ?) WHERE name = ?",
                        (self.status, self.now, self.actor,
                         self.now if self.status == "running" else None, self.name))
        return str(row[0])


class PendingTargets(Op):
    """Numbers found in the city's ads that the campaign has not texted or skipped yet,
    the earliest found first."""

    __slots__ = ("campaign", "city")

    def __init__(self, campaign: str, city: str):
        self.campaign, self.city = campaign, city

    def apply(self, cur: Cursor, cache: WriterCache) -> list[str]:
        return pending_targets(cur, self.campaign, self.city)


def pending_targets(conn: sqlite3.Connection | Cursor, campaign: str, city: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT f.number FROM found_numbers f WHERE f.city = ? AND NOT EXISTS (SELECT 1 FROM "
        "campaign_targets t WHERE t.campaign = ? AND t.number = f.number) "
        "ORDER BY f.first_seen, f.number", (city, campaign))]


def _skip_reason(cur: Cursor, number: str, *, now: float, contact_after: float) -> str | None:
    row = cur.execute("SELECT opted_out FROM opt_outs WHERE number = ?", (number,)).fetchone()
    if row is not None and row[0]:
        return "opted_out"
    recent = cur.execute("SELECT 1 FROM campaign_targets WHERE number = ? AND status = 'sent' "
                         "AND at > ? LIMIT 1", (number, now - contact_after)).fetchone()
    if recent is not None:
        return "recent"
    talking = cur.execute("SELECT 1 FROM conversations WHERE their_number = ? AND "
                          "kind = 'outreach' AND status != 'ended' LIMIT 1", (number,)).fetchone()
    if talking is not None:
        return "in_conversation"
    return None


class SendingNumbers(Op):
    """Whether `number` may be texted now, and which of `ours` have never talked with it.

    Returns (skip reason, None) or (None, the free numbers of ours, in the given order).
    """

    __slots__ = ("contact_after", "now", "number", "ours")

    def __init__(self, number: str, ours: list[str], *, now: float, contact_after: float):
        self.number, self.ours, self.now, self.contact_after = number, ours, now, contact_after

    def apply(self, cur: Cursor, cache: WriterCache) -> tuple[str | None, list[str] | None]:
        reason = _skip_reason(cur, self.number, now=self.now, contact_after=self.contact_after)
        if reason is not None:
            return reason, None
        taken = {r[0] for r in cur.execute("SELECT our_number FROM conversations WHERE "
                                           "their_number = ?", (self.number,))}
        free = [n for n in self.ours if n not in taken]
        return (None, free) if free else ("in_conversation", None)


class CampaignSkip(Op):
    """Record that a campaign will not text a number (see `SKIP_REASONS`)."""

    __slots__ = ("campaign", "city", "now", "number", "reason")

    def __init__(self, campaign: str, city: str, number: str, reason: str, *, now: float):
        assert reason in SKIP_REASONS, reason
        self.campaign, self.city, self.number, self.reason, self.now = (
            campaign, city, number, reason, now)

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        cur.execute("INSERT OR IGNORE INTO campaign_targets (campaign, number, city, status, at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (self.campaign, self.number, self.city, self.reason, self.now))


@dataclass(slots=True)
class Opening:
    """A conversation as a campaign's first text leaves it: the scenario after its start."""

    scenario: str
    version: int
    state: str
    """The engine state as JSON (turn 1, waiting for the reply)."""
    status: str
    outcome: str | None
    timer_at: float | None
    texts: list[str]
    tags: list[str] = field(default_factory=list)
    transitions: list[FunnelMove] = field(default_factory=list)
    """The moves of the start step (turn 1)."""
    variant: str = ""


@dataclass(frozen=True, slots=True)
class CampaignSent:
    conversation_id: int
    rows: list[OutboxRow]
    timer_at: float | None


class CampaignSend(Op):
    """Text `number` from `our`: the conversation and its first text, in one transaction.

    Returns `CampaignSent`; a skip reason (recorded as the target's status) when the number
    may not be texted after all (or the status the campaign already recorded for it); or
    None when `our` has meanwhile got a conversation with the number (nothing written:
    choose again).
    """

    __slots__ = ("campaign", "city", "contact_after", "now", "number", "opening", "our")

    def __init__(self, *, campaign: str, city: str, number: str, our: str, opening: Opening,
                 now: float, contact_after: float):
        self.campaign, self.city, self.number, self.our = campaign, city, number, our
        self.opening, self.now, self.contact_after = opening, now, contact_after

    def apply(self, cur: Cursor, cache: WriterCache) -> CampaignSent | str | None:
        now, o = self.now, self.opening
        done = cur.execute("SELECT status FROM campaign_targets WHERE campaign = ? AND "
                           "number = ?", (self.campaign, self.number)).fetchone()
        if done is not None:
            return str(done[0])  # this campaign has already decided about the number
        reason = _skip_reason(cur, self.number, now=now, contact_after=self.contact_after)
        if reason is not None:
            CampaignSkip(self.campaign, self.city, self.number, reason, now=now).apply(cur, cache)
            return reason
        taken = cur.execute("SELECT 1 FROM conversations WHERE our_number = ? AND "
                            "their_number = ?", (self.our, self.number)).fetchone()
        if taken is not None:
            return None
        cur.execute(
            "INSERT INTO conversations (our_number, their_number, scenario, version, status, "
            "outcome, state, inbound_count, processed_count, timer_at, crashes, created_at, "
            "updated_at, kind) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, ?, 0, ?, ?, 'outreach')",
            (self.our, self.number, o.scenario, o.version, o.status, o.outcome, o.state,
             o.timer_at, now, now))
        conversation_id = int(cur.lastrowid or 0)
        rows = [OutboxRow(id=f"{conversation_id}.1.{i}", conversation_id=conversation_id,
                          position=100 + i, our_number=self.our, their_number=self.number,
                          body=text, not_before=now, kind="campaign")
                for i, text in enumerate(o.texts)]
        cur.executemany(
            "INSERT INTO outbox (id, conversation_id, position, our_number, their_number, body, "
            "not_before, status, kind, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 'campaign', ?, ?)",
            [(r.id, r.conversation_id, r.position, r.our_number, r.their_number, r.body,
              r.not_before, now, now) for r in rows])
        cur.executemany("INSERT OR IGNORE INTO tags (conversation_id, name, created_at) "
                        "VALUES (?, ?, ?)", [(conversation_id, t, now) for t in o.tags])
        cur.executemany(
            "INSERT INTO transitions (conversation_id, scenario, version, turn, source, target, "
            "trigger, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(conversation_id, o.scenario, o.version, t.turn, t.source, t.target, t.trigger,
              now) for t in o.transitions])
        cur.execute("INSERT INTO campaign_targets (campaign, number, city, status, "
                    "conversation_id, our_number, variant, at) "
                    "VALUES (?, ?, ?, 'sent', ?, ?, ?, ?)",
                    (self.campaign, self.number, self.city, conversation_id, self.our,
                     o.variant, now))
        return CampaignSent(conversation_id, rows, o.timer_at)


class CampaignRows(Op):
    """The campaign (name) of each of these outbox rows that is a campaign's first text."""

    __slots__ = ("ids",)

    def __init__(self, ids: list[str]):
        self.ids = ids

    def apply(self, cur: Cursor, cache: WriterCache) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(self.ids), 500):
            chunk = self.ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(cur.execute(
                f"SELECT o.id, t.campaign FROM outbox o JOIN campaign_targets t ON "
                f"t.conversation_id = o.conversation_id WHERE o.kind = 'campaign' AND "
                f"o.id IN ({marks})", chunk))
        return found


class Reschedule(Op):
    """Move queued outbox rows to a later not-before time: [(id, not_before)]."""

    __slots__ = ("moves", "now")

    def __init__(self, moves: list[tuple[str, float]], *, now: float):
        self.moves, self.now = moves, now

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        cur.executemany("UPDATE outbox SET not_before = ?, updated_at = ? WHERE id = ? "
                        "AND status = 'queued'",
                        [(at, self.now, oid) for oid, at in self.moves])


# -- progress (plain read functions, for the API's read connections)


@dataclass(slots=True)
class CampaignCounts:
    """A campaign's progress as stored. `pending` lists the numbers still to be decided."""

    status: str | None = None
    """running, paused, or None (never started)."""
    started_at: float | None = None
    texted: int = 0
    """Conversations the campaign started (its text committed)."""
    by_text_status: dict[str, int] = field(default_factory=dict)
    """Those first texts by outbox status: queued, sending, sent, delivered, failed..."""
    skipped: dict[str, int] = field(default_factory=dict)
    replied: int = 0
    handed_off: int = 0
    opted_out_after: int = 0
    """Texted numbers that opted out since."""
    pending: list[str] = field(default_factory=list)


def campaign_counts(conn: sqlite3.Connection, name: str, city: str) -> CampaignCounts:
    """Where campaign `name` (of `city`) stands."""
    counts = CampaignCounts()
    row = conn.execute("SELECT status, started_at FROM campaigns WHERE name = ?",
                       (name,)).fetchone()
    if row is not None:
        counts.status, counts.started_at = row[0], row[1]
    for status, n in conn.execute("SELECT status, count(*) FROM campaign_targets "
                                  "WHERE campaign = ? GROUP BY 1", (name,)):
        if status == "sent":
            counts.texted = n
        else:
            counts.skipped[status] = n
    counts.by_text_status = dict(conn.execute(
        "SELECT o.status, count(DISTINCT o.conversation_id) FROM campaign_targets t "
        "JOIN outbox o ON o.conversation_id = t.conversation_id AND o.kind = 'campaign' "
        "WHERE t.campaign = ? AND o.position = 100 GROUP BY 1", (name,)))
    counts.replied, counts.handed_off, counts.opted_out_after = conn.execute(
        f"SELECT coalesce(sum(c.inbound_count > 0), 0), coalesce(sum({HANDED_OFF_SQL}), 0), "
        "coalesce(sum(EXISTS (SELECT 1 FROM opt_outs x WHERE x.number = c.their_number AND "
        "x.opted_out)), 0) FROM campaign_targets t JOIN conversations c ON "
        "c.id = t.conversation_id WHERE t.campaign = ?", (name,)).fetchone()
    counts.pending = pending_targets(conn, name, city)
    return counts


HANDED_OFF_SQL = (
    "(c.status = 'handed_off' OR c.operator = 1 OR EXISTS (SELECT 1 FROM outbox h WHERE "
    "h.conversation_id = c.id AND h.kind = 'operator') OR EXISTS (SELECT 1 FROM "
    "advocate_outcomes a WHERE a.conversation_id = c.id))")
"""A conversation (alias c) is or was with a human: handed off by the scenario, taken over,
answered by a human, or given an outcome by an advocate."""
