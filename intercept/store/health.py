"""Number health: per our number, the share of failed deliveries over a recent window.

Read from the outbox: rows settled (delivered or failed) within the window, by sending number,
with each failure put in one reason from its error (a receipt's stat and error code over SMPP,
the provider's error code over Twilio). A carrier that filters a number's texts, an
unregistered sender or recipients' carrier-level opt-outs show up here before anywhere else.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field

from .ops import Op, WriterCache

REASONS = ("carrier_filtered", "unregistered_sender", "carrier_opt_out", "blocked",
           "unreachable", "expired", "rejected", "other")
"""Why a delivery failed, coarsely (the metric's `reason` label)."""

_PROVIDER_CODES = {
    "30007": "carrier_filtered", "30008": "other", "30034": "unregistered_sender",
    "30032": "unregistered_sender", "30035": "unregistered_sender", "21610": "carrier_opt_out",
    "30004": "blocked", "30003": "unreachable", "30005": "unreachable", "30006": "unreachable",
    "30001": "expired", "30002": "rejected",
}
_SMPP_STATS = {"UNDELIV": "unreachable", "EXPIRED": "expired", "REJECTD": "rejected",
               "DELETED": "rejected", "UNKNOWN": "other"}
_CODE = re.compile(r"provider error (\d+)")


def failure_reason(error: str | None) -> str:
    """The reason of one failure, from the error recorded with it."""
    text = (error or "").strip()
    match = _CODE.search(text)
    if match:
        return _PROVIDER_CODES.get(match.group(1), "other")
    stat = text.split(" ", 1)[0].upper()
    if stat in _SMPP_STATS:
        return _SMPP_STATS[stat]
    if "ESME_R" in text or "refused" in text:
        return "rejected"
    return "other"


@dataclass
class Health:
    """One of our numbers over the window."""

    number: str
    delivered: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def settled(self) -> int:
        return self.delivered + self.failed

    @property
    def failure_share(self) -> float:
        return self.failed / self.settled if self.settled else 0.0


def number_health(conn: sqlite3.Connection | sqlite3.Cursor, since: float,
                  numbers: list[str] | None = None) -> dict[str, Health]:
    """Health of each number that settled messages since `since` (and of `numbers`, even
    without any)."""
    out = {n: Health(n) for n in numbers or []}
    rows = conn.execute(
        "SELECT our_number, status, error, count(*) FROM outbox "
        "WHERE status IN ('delivered', 'failed') AND updated_at >= ? "
        "GROUP BY our_number, status, error", (since,))
    for number, status, error, count in rows:
        health = out.setdefault(number, Health(number))
        if status == "delivered":
            health.delivered += count
        else:
            health.failed += count
            health.reasons[failure_reason(error)] += count
    return out


class NumberHealth(Op):
    """`number_health` through the writer (the server's health monitor)."""

    __slots__ = ("numbers", "since")

    def __init__(self, since: float, numbers: list[str]):
        self.since, self.numbers = since, numbers

    def apply(self, cur: sqlite3.Cursor, cache: WriterCache) -> dict[str, Health]:
        return number_health(cur, self.since, self.numbers)
