"""What the console tells an open page about the hand-off queue: counts only, never a number,
a name of the person or a word of what they wrote.

Every event stream (`Pages.events`) keeps a `QueueWatch`, shows it the open hand-offs the
page's user is offered at each look, and sends the ``handoffs`` event it makes when something
changed. console.js puts the counts in the header and announces new and urgent hand-offs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..store.console_reads import OpenHandoff


class QueueWatch:
    """Follows the hand-offs one user is offered; says what changed since the last look."""

    def __init__(self) -> None:
        self.priorities: dict[int, str] | None = None
        """The open hand-offs at the last look, with their priority (None before the first)."""
        self.last: tuple[tuple[int, str, str | None, bool], ...] | None = None

    def look(self, rows: Sequence[OpenHandoff]) -> bytes:
        """A ``handoffs`` server-sent event when the queue changed since the last look (always
        at the first), else nothing. ``new`` counts hand-offs offered since the last look and
        ``new_urgent`` those that are urgent now and were not (new or raised)."""
        state = tuple((r.id, r.priority, r.claimed_by, r.answered) for r in rows)
        if state == self.last:
            return b""
        before = self.priorities
        new = new_urgent = 0
        if before is not None:
            new = sum(1 for r in rows if r.id not in before)
            new_urgent = sum(1 for r in rows if r.priority == "urgent"
                             and before.get(r.id) != "urgent")
        self.priorities, self.last = {r.id: r.priority for r in rows}, state
        data = json.dumps({"open": len(rows),
                           "urgent": sum(r.priority == "urgent" for r in rows),
                           "unclaimed": sum(r.claimed_by is None for r in rows),
                           "new": new, "new_urgent": new_urgent}, separators=(",", ":"))
        return f"event: handoffs\ndata: {data}\n\n".encode()
