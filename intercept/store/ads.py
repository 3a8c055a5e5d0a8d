"""Ads and the numbers found in them (victim outreach), written by `intercept ads import`.

Only the importer writes these tables, in short transactions of its own connection (SQLite's
WAL lets it run beside a serving server, whose single writer never touches them). An ad is
kept without its text: a hash of the text, where and when it was seen, and the numbers in it.
Duplicates are merged: the same source and external id, or the same text (by hash).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

_SPACES = re.compile(r"\s+")


def text_hash(text: str) -> str:
    """SHA-256 of the ad text with Unicode, case and whitespace differences folded."""
    folded = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return hashlib.sha256(folded.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AdRecord:
    """One ad to import, already read and searched for numbers."""

    city: str
    source: str
    text_hash: str
    numbers: tuple[str, ...]
    """E.164 numbers found in the text."""
    external_id: str | None = None
    url: str | None = None
    posted_at: float | None = None


@dataclass(slots=True)
class ImportCounts:
    """What an import did. Numbers are counted once each, new if no ad had them before."""

    read: int = 0
    new: int = 0
    merged: int = 0
    numbers: dict[str, bool] = field(default_factory=dict)
    """number -> it was new (unknown before this import)."""

    @property
    def numbers_new(self) -> int:
        return sum(self.numbers.values())

    @property
    def numbers_known(self) -> int:
        return len(self.numbers) - self.numbers_new

    def summary(self) -> str:
        return (f"{self.read} ads read: {self.new} new, {self.merged} merged; numbers: "
                f"{self.numbers_new} new, {self.numbers_known} known")


def registered_cities(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """The cities the store's server registered (at its start), each with our numbers there."""
    cities: dict[str, list[str]] = {}
    for number, city in conn.execute("SELECT number, city FROM number_kinds WHERE city IS NOT "
                                     "NULL ORDER BY city, number"):
        cities.setdefault(city, []).append(number)
    return cities


def import_ads(conn: sqlite3.Connection, records: Iterable[AdRecord], *, now: float,
               counts: ImportCounts | None = None, batch: int = 500) -> ImportCounts:
    """Store `records` (in transactions of `batch` ads), merging duplicates; add to `counts`."""
    counts = counts if counts is not None else ImportCounts()
    pending: list[AdRecord] = []
    for record in records:
        pending.append(record)
        if len(pending) >= batch:
            _write(conn, pending, now, counts)
            pending = []
    if pending:
        _write(conn, pending, now, counts)
    return counts


def _write(conn: sqlite3.Connection, records: list[AdRecord], now: float,
           counts: ImportCounts) -> None:
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        seen = dict(counts.numbers)
        read = new = merged = 0
        for record in records:
            read += 1
            row = None
            if record.external_id is not None:
                row = cur.execute("SELECT id FROM ads WHERE source = ? AND external_id = ?",
                                  (record.source, record.external_id)).fetchone()
            if row is None:
                row = cur.execute("SELECT id FROM ads WHERE text_hash = ?",
                                  (record.text_hash,)).fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO ads (source, external_id, city, url, text_hash, posted_at, "
                    "first_seen, last_seen, seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                    (record.source, record.external_id, record.city, record.url,
                     record.text_hash, record.posted_at, now, now))
                ad_id = cur.lastrowid
                new += 1
            else:
                ad_id = row[0]
                cur.execute("UPDATE ads SET last_seen = max(last_seen, ?), seen = seen + 1, "
                            "url = coalesce(url, ?), posted_at = coalesce(posted_at, ?) "
                            "WHERE id = ?", (now, record.url, record.posted_at, ad_id))
                merged += 1
            for number in dict.fromkeys(record.numbers):
                if number not in seen:
                    known = cur.execute("SELECT 1 FROM found_numbers WHERE number = ? LIMIT 1",
                                        (number,)).fetchone()
                    seen[number] = known is None
                cur.execute("INSERT OR IGNORE INTO ad_numbers (ad_id, number) VALUES (?, ?)",
                            (ad_id, number))
                cur.execute(
                    "INSERT INTO found_numbers (number, city, first_seen, last_seen) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (number, city) DO UPDATE SET "
                    "last_seen = max(last_seen, excluded.last_seen)",
                    (number, record.city, now, now))
        cur.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            cur.execute("ROLLBACK")
        raise
    counts.read += read
    counts.new += new
    counts.merged += merged
    counts.numbers = seen
