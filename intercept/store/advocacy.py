"""Write operations for advocates: the outcomes they record on handed-off conversations.

The hand-off queue itself is read in `reads.py`; taking a conversation over and handing it back
are `OperatorSend` and `HandBack` in `ops.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from sqlite3 import Cursor
from typing import Final

from .ops import Op, WriterCache

OUTCOME_KINDS: Final = ("positive_conversation", "meeting_scheduled", "connected_to_services",
                        "other")
"""What an advocate can record; `other` needs a note."""


@dataclass(frozen=True, slots=True)
class RecordedOutcome:
    id: int
    conversation_id: int
    kind: str
    note: str
    author: str
    at: float


class RecordOutcome(Op):
    """Record one outcome of a conversation (several per conversation are allowed).

    Returns the stored outcome, or None when there is no such conversation.
    """

    __slots__ = ("author", "conversation_id", "kind", "note", "now")

    def __init__(self, conversation_id: int, kind: str, *, author: str, now: float,
                 note: str = ""):
        if kind not in OUTCOME_KINDS:
            raise ValueError(f"unknown outcome {kind!r}; use one of {', '.join(OUTCOME_KINDS)}")
        if kind == "other" and not note.strip():
            raise ValueError("an outcome of kind 'other' needs a note saying what happened")
        self.conversation_id, self.kind, self.note = conversation_id, kind, note
        self.author, self.now = author, now

    def apply(self, cur: Cursor, cache: WriterCache) -> RecordedOutcome | None:
        exists = cur.execute("SELECT 1 FROM conversations WHERE id = ?",
                             (self.conversation_id,)).fetchone()
        if exists is None:
            return None
        cur.execute("INSERT INTO advocate_outcomes (conversation_id, kind, note, author, at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (self.conversation_id, self.kind, self.note, self.author, self.now))
        return RecordedOutcome(cur.lastrowid or 0, self.conversation_id, self.kind, self.note,
                               self.author, self.now)
