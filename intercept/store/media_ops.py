"""Store operations of the media fetcher (intercept/buyers/media.py): pick due rows, record
outcomes.

A `media` row is written 'pending' by `Ingest` and ends 'stored', 'refused' (against the rules
in `[media]`: never retried) or 'failed' (gone, or out of attempts). The outcome ops only change
a row that is still 'pending', so a late or repeated outcome changes nothing; they return
whether the row changed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from sqlite3 import Cursor
from typing import Literal

from .ops import Op, WriterCache

GaveUpStatus = Literal["refused", "failed"]


@dataclass(frozen=True, slots=True)
class PendingRow:
    """One media URL waiting to be fetched."""

    id: int
    conversation_id: int
    inbound_seq: int
    position: int
    url: str
    attempts: int
    """Attempts made so far (0 for a new row)."""


def _not_in(ids: Collection[int]) -> tuple[str, tuple[int, ...]]:
    if not ids:
        return "", ()
    return f" AND id NOT IN ({', '.join('?' * len(ids))})", tuple(ids)


class PendingMedia(Op):
    """Pending rows due at `now` (oldest due first), at most `limit`, skipping `exclude_ids`
    (the rows being fetched right now)."""

    __slots__ = ("exclude_ids", "limit", "now")

    def __init__(self, now: float, limit: int, exclude_ids: Collection[int] = ()):
        self.now, self.limit, self.exclude_ids = now, limit, tuple(exclude_ids)

    def apply(self, cur: Cursor, cache: WriterCache) -> list[PendingRow]:
        if self.limit <= 0:
            return []
        clause, params = _not_in(self.exclude_ids)
        rows = cur.execute(
            "SELECT id, conversation_id, inbound_seq, position, url, attempts FROM media "
            "WHERE status = 'pending' AND next_attempt_at <= ?" + clause +
            " ORDER BY next_attempt_at, id LIMIT ?", (self.now, *params, self.limit)).fetchall()
        return [PendingRow(*row) for row in rows]


class NextMediaAttempt(Op):
    """The earliest `next_attempt_at` of the pending rows not in `exclude_ids`, or None."""

    __slots__ = ("exclude_ids",)

    def __init__(self, exclude_ids: Collection[int] = ()):
        self.exclude_ids = tuple(exclude_ids)

    def apply(self, cur: Cursor, cache: WriterCache) -> float | None:
        clause, params = _not_in(self.exclude_ids)
        row = cur.execute("SELECT min(next_attempt_at) FROM media WHERE status = 'pending'"
                          + clause, params).fetchone()
        return None if row is None or row[0] is None else float(row[0])


class MediaStored(Op):
    """The media is on disk as `sha256` (see `intercept.buyers.media.media_path`)."""

    __slots__ = ("content_type", "id", "now", "sha256", "size")

    def __init__(self, id: int, sha256: str, content_type: str, size: int, now: float):
        self.id, self.sha256, self.content_type = id, sha256, content_type
        self.size, self.now = size, now

    def apply(self, cur: Cursor, cache: WriterCache) -> bool:
        cur.execute("UPDATE media SET status = 'stored', sha256 = ?, content_type = ?, size = ?, "
                    "error = NULL, attempts = attempts + 1, next_attempt_at = NULL, "
                    "fetched_at = ? WHERE id = ? AND status = 'pending'",
                    (self.sha256, self.content_type, self.size, self.now, self.id))
        return cur.rowcount > 0


class MediaGaveUp(Op):
    """No more attempts: 'refused' (against the rules) or 'failed' (gone, or out of attempts).

    `error` is a short sentence for the operator; it never holds a URL's secrets or a token.
    """

    __slots__ = ("error", "id", "now", "status")

    def __init__(self, id: int, status: GaveUpStatus, error: str, now: float):
        if status not in ("refused", "failed"):
            raise ValueError(f"a media row gives up as 'refused' or 'failed', not {status!r}")
        self.id, self.status, self.error, self.now = id, status, error, now

    def apply(self, cur: Cursor, cache: WriterCache) -> bool:
        cur.execute("UPDATE media SET status = ?, error = ?, attempts = attempts + 1, "
                    "next_attempt_at = NULL, fetched_at = ? WHERE id = ? AND status = 'pending'",
                    (self.status, self.error, self.now, self.id))
        return cur.rowcount > 0


class MediaRetry(Op):
    """The attempt failed for now: count it and try again at `next_attempt_at`."""

    __slots__ = ("error", "id", "next_attempt_at", "now")

    def __init__(self, id: int, error: str, next_attempt_at: float, now: float):
        self.id, self.error, self.next_attempt_at, self.now = id, error, next_attempt_at, now

    def apply(self, cur: Cursor, cache: WriterCache) -> bool:
        cur.execute("UPDATE media SET error = ?, attempts = attempts + 1, next_attempt_at = ? "
                    "WHERE id = ? AND status = 'pending'",
                    (self.error, self.next_attempt_at, self.id))
        return cur.rowcount > 0
