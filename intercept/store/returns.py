"""Return contacts: did buyers who got the deterrence message come back less often?

One record per buyer number (`buyer_returns`), built from every buyer-only conversation
(`reads.BUYER_ONLY_SQL`: never a number seen on the outreach side), across all our numbers and
cities. A buyer's *first conversation* (the one of his first message) decides his group:

- **deterred**: it ended `deterred` and its last reply (the deterrence message, with the link)
  went out (`sent` or `delivered`; `delivered` when the carrier's receipt confirmed it). The
  clock starts when that message was sent.
- **left**: it ended without the deterrence going out (another outcome, or a deterrence that
  failed or was refused). The clock starts when it ended (its last funnel transition).
- **open**: it has not ended (still talking, with an advocate, or parked), or its deterrence is
  still on its way: not compared yet.

He *came back* with any message from his number to any of our buyer numbers after the clock
started: another conversation (another number, another city), or the same one again, except
that a message in the same conversation within `REPLY_GRACE` of the start is an answer to it
("who is this?"), not a return. A window (30, 90 days) is counted only for buyers whose
clock started at least that long before `as_of`; the others cannot be judged yet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import msgspec

from .reads import BUYER_ONLY_SQL
from .report import DETERRED

DAY = 86400.0
WINDOWS = (30, 90)
"""Days after which a return is looked for."""
REPLY_GRACE = DAY
"""Messages in the same conversation this soon after the clock started answer it; they are not
a return."""
_SENT = ("sent", "delivered")
_PENDING = ("queued", "sending", "unknown")
"""A deterrence still on its way (or whose submit's outcome is unknown): not decided yet."""


class BuyerReturn(msgspec.Struct, frozen=True):
    """One buyer's history, as the return figures read it."""

    number: str
    city: str
    conversation_id: int
    """His first conversation."""
    first_contact: float
    group: str
    """deterred, left or open."""
    started: float | None
    """When the clock started: the deterrence sent, or the first conversation ended."""
    delivered: bool
    """The deterrence message's delivery was confirmed by a receipt."""
    returned: float | None
    """The first message after the clock started that counts as coming back."""

    def back_within(self, days: int) -> bool:
        return (self.started is not None and self.returned is not None
                and self.returned - self.started <= days * DAY)

    def observable(self, days: int, as_of: float) -> bool:
        return self.started is not None and self.started + days * DAY <= as_of


def buyer_returns(conn: sqlite3.Connection, *, city_of_number: Callable[[str], str]
                  ) -> list[BuyerReturn]:
    """Every buyer's first contact, group, clock start and first return, by number."""
    rows = conn.execute(
        "SELECT c.id, c.our_number, c.their_number, c.status, c.outcome, "
        "(SELECT max(t.at) FROM transitions t WHERE t.conversation_id = c.id), "
        "o.status, coalesce(o.sent_at, o.updated_at) FROM conversations c "
        "LEFT JOIN outbox o ON o.id = (SELECT x.id FROM outbox x WHERE "
        "x.conversation_id = c.id AND x.kind = 'reply' ORDER BY x.position DESC LIMIT 1) "
        f"WHERE {BUYER_ONLY_SQL}").fetchall()
    inbound: dict[int, list[float]] = {row[0]: [] for row in rows}
    for cid, at in conn.execute(  # the gate once per conversation (above), not per message
            "SELECT i.conversation_id, i.received_at FROM inbound i JOIN conversations c ON "
            "c.id = i.conversation_id WHERE c.kind = 'buyer' ORDER BY i.received_at"):
        if cid in inbound:
            inbound[cid].append(at)
    convs: dict[str, list[tuple[float, int, str, str, str | None, float | None,
                                str | None, float | None]]] = {}
    for cid, our, their, status, outcome, ended, last_status, last_at in rows:
        times = inbound[cid]
        if not times:
            continue
        convs.setdefault(their, []).append(
            (times[0], cid, our, status, outcome, ended, last_status, last_at))
    out = []
    for number, history in convs.items():
        history.sort()
        first, cid, our, status, outcome, ended, last_status, last_at = history[0]
        delivered = False
        if outcome == DETERRED and last_status in _SENT:
            group, started, delivered = "deterred", last_at, last_status == "delivered"
        elif status == "ended" and not (outcome == DETERRED and last_status in _PENDING):
            group, started = "left", ended if ended is not None else inbound[cid][-1]
        else:
            group, started = "open", None
        returned = None
        if started is not None:
            later = [t for other in history for t in inbound[other[1]]
                     if t > started + (REPLY_GRACE if other[1] == cid else 0.0)]
            returned = min(later, default=None)
        out.append(BuyerReturn(number, city_of_number(our), cid, first, group, started,
                               delivered, returned))
    return sorted(out, key=lambda b: (b.first_contact, b.number))


class Cohort(msgspec.Struct):
    """Buyers of one group; `back[d]` of `judged[d]` came back within d days."""

    buyers: int = 0
    judged: dict[int, int] = msgspec.field(default_factory=lambda: dict.fromkeys(WINDOWS, 0))
    back: dict[int, int] = msgspec.field(default_factory=lambda: dict.fromkeys(WINDOWS, 0))

    def add(self, buyer: BuyerReturn, as_of: float) -> None:
        self.buyers += 1
        for days in WINDOWS:
            if buyer.observable(days, as_of):
                self.judged[days] += 1
                self.back[days] += buyer.back_within(days)


class ReturnRow(msgspec.Struct):
    """Return figures of one city and period (``all`` for every period, ``total`` city)."""

    city: str
    period: str
    deterred: Cohort = msgspec.field(default_factory=Cohort)
    left: Cohort = msgspec.field(default_factory=Cohort)
    open: int = 0
    delivered: int = 0
    """Deterred buyers whose deterrence message has a delivery receipt."""

    def add(self, buyer: BuyerReturn, as_of: float) -> None:
        if buyer.group == "deterred":
            self.deterred.add(buyer, as_of)
            self.delivered += buyer.delivered
        elif buyer.group == "left":
            self.left.add(buyer, as_of)
        else:
            self.open += 1


def period_of(at: float, period: str) -> str:
    """The UTC month (``2024-05``), quarter (``2024-Q2``) or year of `at`; ``all`` for none."""
    when = datetime.fromtimestamp(at, UTC)
    if period == "month":
        return f"{when.year}-{when.month:02d}"
    if period == "quarter":
        return f"{when.year}-Q{(when.month - 1) // 3 + 1}"
    if period == "year":
        return str(when.year)
    return "all"


def return_rows(buyers: Iterable[BuyerReturn], *, as_of: float, period: str = "month",
                since: float | None = None, city: str | None = None) -> list[ReturnRow]:
    """Rows per city and period of first contact, then per city (``all``), then the total.

    `since` and `city` select buyers by their first contact and the city of its number.
    """
    rows: dict[tuple[str, str], ReturnRow] = {}
    for b in buyers:
        if (since is not None and b.first_contact < since) or (city and b.city != city):
            continue
        keys = [(b.city, "all"), ("total", "all")]
        if period != "all":
            keys.append((b.city, period_of(b.first_contact, period)))
        for key in keys:
            rows.setdefault(key, ReturnRow(*key)).add(b, as_of)
    order = sorted((k for k in rows if k[0] != "total"), key=lambda k: (k[0], k[1] == "all", k[1]))
    return [rows[k] for k in order] + ([rows["total", "all"]] if rows else [])


def returns_report(conn: sqlite3.Connection, *, as_of: float, city_of_number: Callable[[str], str],
                   period: str = "month", since: float | None = None, city: str | None = None
                   ) -> list[ReturnRow]:
    """`return_rows` of the store's buyers."""
    return return_rows(buyer_returns(conn, city_of_number=city_of_number), as_of=as_of,
                       period=period, since=since, city=city)


def city_lookup(conn: sqlite3.Connection, fallback: dict[str, str] | None = None
                ) -> Callable[[str], str]:
    """Our number -> its city: the store's record of it, the config's, else ``unknown``."""
    known = dict(conn.execute("SELECT number, city FROM number_kinds"))
    other = dict(fallback or {})
    return lambda number: known.get(number) or other.get(number) or "unknown"
