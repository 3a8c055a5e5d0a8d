"""Read-only queries behind `intercept scenario replay` and `intercept scenario stats`:
a stored conversation's messages, and a scenario's funnel."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredMessage:
    body: str
    at: float


@dataclass(frozen=True, slots=True)
class StoredConversation:
    """What a replay needs of a stored conversation: its scenario version, state and outcome,
    the buyer's messages in order and our replies in order."""

    scenario: str
    version: int
    outcome: str | None
    state: str | None
    inbound: list[StoredMessage]
    replies: list[StoredMessage]


def stored_conversation(conn: sqlite3.Connection, conversation_id: int
                        ) -> StoredConversation | None:
    """The conversation `conversation_id` with its messages; None if the store has none."""
    row = conn.execute("SELECT scenario, version, outcome, state FROM conversations "
                       "WHERE id = ?", (conversation_id,)).fetchone()
    if row is None:
        return None
    inbound = conn.execute("SELECT body, received_at FROM inbound WHERE conversation_id = ? "
                           "ORDER BY conv_seq", (conversation_id,)).fetchall()
    replies = conn.execute("SELECT body, created_at FROM outbox WHERE conversation_id = ? "
                           "AND kind = 'reply' ORDER BY position", (conversation_id,)).fetchall()
    scenario, version, outcome, state = tuple(row)
    return StoredConversation(scenario, version, outcome, state,
                              [StoredMessage(*r) for r in inbound],
                              [StoredMessage(*r) for r in replies])


@dataclass(frozen=True, slots=True)
class Move:
    source: str | None
    target: str
    trigger: str
    count: int


@dataclass(frozen=True, slots=True)
class Funnel:
    """A scenario's funnel: conversations per version, conversations that reached each state
    (most first), transitions taken (most first) and outcomes (``(open)`` for none yet)."""

    versions: list[tuple[int, int]]
    reached: list[tuple[str, int]]
    moves: list[Move]
    outcomes: list[tuple[str, int]]


def scenario_funnel(conn: sqlite3.Connection, name: str, version: int | None = None) -> Funnel:
    """The funnel of scenario `name` (only `version` if given)."""
    where, params = "scenario = ?", [name]
    if version is not None:
        where += " AND version = ?"
        params.append(version)
    versions = conn.execute(f"SELECT version, count(*) FROM conversations WHERE {where} "
                            "GROUP BY version ORDER BY version", params).fetchall()
    reached = conn.execute(f"SELECT target, count(DISTINCT conversation_id) FROM transitions "
                           f"WHERE {where} GROUP BY target ORDER BY 2 DESC, 1",
                           params).fetchall()
    moves = conn.execute(f"SELECT source, target, trigger, count(*) FROM transitions "
                         f"WHERE {where} GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2",
                         params).fetchall()
    outcomes = conn.execute(f"SELECT coalesce(outcome, '(open)'), count(*) FROM "
                            f"conversations WHERE {where} GROUP BY 1 ORDER BY 2 DESC",
                            params).fetchall()
    return Funnel([(v, n) for v, n in versions], [(t, n) for t, n in reached],
                  [Move(*m) for m in moves], [(o, n) for o, n in outcomes])
