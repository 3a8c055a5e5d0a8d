"""Writer operations of buyer intelligence: offline number metadata, the lookup cache and the
daily lookup budget (tables of migration 8; see docs/evidence.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from sqlite3 import Cursor

from .ops import Op, WriterCache


class UnenrichedNumbers(Op):
    """Buyer numbers (conversations of kind 'buyer') without offline metadata, among the
    conversations after id `after` (by id, at most `limit` conversations looked at).

    Returns the numbers and the last conversation id looked at (the next call's `after`), so
    each call reads only new conversations through the primary key.
    """

    __slots__ = ("after", "limit")

    def __init__(self, after: int = 0, limit: int = 500):
        self.after, self.limit = after, limit

    def apply(self, cur: Cursor, cache: WriterCache) -> tuple[list[str], int]:
        rows = cur.execute(
            "SELECT c.id, c.their_number, c.kind = 'buyer' AND NOT EXISTS (SELECT 1 FROM "
            "number_info n WHERE n.number = c.their_number) FROM conversations c "
            "WHERE c.id > ? ORDER BY c.id LIMIT ?", (self.after, self.limit)).fetchall()
        numbers = list(dict.fromkeys(number for _, number, todo in rows if todo))
        return numbers, rows[-1][0] if rows else self.after


@dataclass(frozen=True, slots=True)
class NumberInfo:
    """What `phonenumbers` knows of a number, offline."""

    number: str
    valid: bool
    type: str = ""
    region: str = ""
    place: str = ""
    timezone: str = ""
    carrier: str = ""

    @classmethod
    def from_fields(cls, number: str, fields: dict[str, str]) -> NumberInfo:
        """From the fields of the `number` lookup (`intercept.runtime.lookups`)."""
        return cls(number, fields.get("valid") == "yes", fields.get("type", ""),
                   fields.get("region", ""), fields.get("place", ""),
                   fields.get("timezone", ""), fields.get("carrier", ""))


class SaveNumberInfo(Op):
    """Store offline metadata; a number already known keeps its first record."""

    __slots__ = ("now", "rows")

    def __init__(self, rows: list[NumberInfo], *, now: float):
        self.rows, self.now = rows, now

    def apply(self, cur: Cursor, cache: WriterCache) -> int:
        cur.executemany(
            "INSERT OR IGNORE INTO number_info (number, valid, type, region, place, timezone, "
            "carrier, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.number, int(r.valid), r.type, r.region, r.place, r.timezone, r.carrier,
              self.now) for r in self.rows])
        return cur.rowcount


class CachedLookup(Op):
    """The cached answer of a lookup of `kind` for `number`, if it has not expired."""

    __slots__ = ("kind", "now", "number")

    def __init__(self, number: str, kind: str, *, now: float):
        self.number, self.kind, self.now = number, kind, now

    def apply(self, cur: Cursor, cache: WriterCache) -> dict[str, str] | None:
        row = cur.execute("SELECT data FROM lookup_cache WHERE number = ? AND kind = ? AND "
                          "expires_at > ?", (self.number, self.kind, self.now)).fetchone()
        return None if row is None else dict(json.loads(row[0]))


class SaveLookup(Op):
    """Cache a lookup's answer until `now + ttl` (it also shows on the buyer's profile)."""

    __slots__ = ("data", "kind", "now", "number", "provider", "ttl")

    def __init__(self, number: str, kind: str, provider: str, data: dict[str, str], *,
                 now: float, ttl: float):
        self.number, self.kind, self.provider, self.data = number, kind, provider, data
        self.now, self.ttl = now, ttl

    def apply(self, cur: Cursor, cache: WriterCache) -> None:
        cur.execute(
            "INSERT INTO lookup_cache (number, kind, provider, data, fetched_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (number, kind) DO UPDATE SET "
            "provider = excluded.provider, data = excluded.data, "
            "fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
            (self.number, self.kind, self.provider, json.dumps(self.data, sort_keys=True),
             self.now, self.now + self.ttl))


class ReserveLookup(Op):
    """Take one request from the day's budget: True if there was one left (and it is now
    counted), False if `limit` requests were already made that day."""

    __slots__ = ("day", "limit", "provider")

    def __init__(self, day: str, provider: str, limit: int):
        self.day, self.provider, self.limit = day, provider, limit

    def apply(self, cur: Cursor, cache: WriterCache) -> bool:
        row = cur.execute("SELECT requests FROM lookup_usage WHERE day = ? AND provider = ?",
                          (self.day, self.provider)).fetchone()
        used = row[0] if row else 0
        if used >= self.limit:
            return False
        cur.execute("INSERT INTO lookup_usage (day, provider, requests) VALUES (?, ?, 1) "
                    "ON CONFLICT (day, provider) DO UPDATE SET requests = requests + 1",
                    (self.day, self.provider))
        return True
