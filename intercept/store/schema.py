"""Database schema, as numbered migrations applied in order (tracked in PRAGMA user_version)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

# Outbox statuses in the order they may advance; a status never moves left. 'unknown' (the
# submit's outcome was lost) sits before 'sent': a later receipt or status callback settles it.
OUTBOX_STATUSES = ("queued", "sending", "unknown", "sent", "delivered")
FINAL_STATUSES = ("failed", "refused")
STATUS_RANK = {s: i for i, s in enumerate(OUTBOX_STATUSES)} | {s: 9 for s in FINAL_STATUSES}
RANK_SQL = "CASE status " + " ".join(
    f"WHEN '{s}' THEN {r}" for s, r in STATUS_RANK.items()) + " ELSE 9 END"


def _m1_core(db: sqlite_utils.Database) -> None:
    db["conversations"].create({
        "id": int, "our_number": str, "their_number": str, "scenario": str, "version": int,
        "status": str, "outcome": str, "state": str, "inbound_count": int,
        "processed_count": int, "timer_at": float, "crashes": int,
        "created_at": float, "updated_at": float,
    }, pk="id", not_null={"our_number", "their_number", "status"},
        defaults={"status": "new", "inbound_count": 0, "processed_count": 0, "crashes": 0})
    db["conversations"].create_index(["our_number", "their_number"], unique=True)
    db["conversations"].create_index(["status", "timer_at"])
    db["inbound"].create({
        "seq": int, "conversation_id": int, "conv_seq": int, "gateway": str, "gateway_id": str,
        "our_number": str, "their_number": str, "body": str, "media": str, "received_at": float,
    }, pk="seq", foreign_keys=[("conversation_id", "conversations", "id")],
        not_null={"conversation_id", "conv_seq", "gateway", "gateway_id"})
    db["inbound"].create_index(["gateway", "gateway_id"], unique=True)
    db["inbound"].create_index(["conversation_id", "conv_seq"], unique=True)
    db["outbox"].create({
        "id": str, "conversation_id": int, "position": int, "our_number": str,
        "their_number": str, "body": str, "not_before": float, "status": str,
        "gateway_id": str, "error": str, "created_at": float, "sent_at": float,
        "updated_at": float,
    }, pk="id", foreign_keys=[("conversation_id", "conversations", "id")],
        not_null={"conversation_id", "body", "status"}, defaults={"status": "queued"})
    db["outbox"].create_index(["conversation_id", "position"])
    db["outbox"].create_index(["gateway_id"])
    db.execute("CREATE INDEX outbox_pending ON outbox(not_before) "
               "WHERE status IN ('queued', 'sending')")


def _m2_effects(db: sqlite_utils.Database) -> None:
    """Tags, the funnel of transitions, opt-outs, pending lookups and outbox row kinds."""
    db["conversations"].add_column("pending_lookup", str)
    db["outbox"].add_column("kind", str, not_null_default="reply")
    db["tags"].create({"conversation_id": int, "name": str, "created_at": float},
                      pk=("conversation_id", "name"),
                      foreign_keys=[("conversation_id", "conversations", "id")])
    db["tags"].create_index(["name"])
    db["transitions"].create({
        "id": int, "conversation_id": int, "scenario": str, "version": int, "turn": int,
        "source": str, "target": str, "trigger": str, "at": float,
    }, pk="id", foreign_keys=[("conversation_id", "conversations", "id")])
    db["transitions"].create_index(["scenario", "version"])
    db["transitions"].create_index(["conversation_id", "turn"])
    db["opt_outs"].create({"number": str, "opted_out": int, "updated_at": float,
                           "conversation_id": int}, pk="number")


def _m3_operators(db: sqlite_utils.Database) -> None:
    """Human take-over of a conversation, and the audit log of the admin API."""
    db["conversations"].add_column("operator", int, not_null_default=0)
    db["conversations"].add_column("resume", int, not_null_default=0)
    db["audit"].create({
        "id": int, "at": float, "actor": str, "role": str, "action": str,
        "conversation_id": int, "status": int, "detail": str,
    }, pk="id")
    db["audit"].create_index(["at"])


def _m4_early_receipts(db: sqlite_utils.Database) -> None:
    """Receipts that arrive before the submit's gateway id is recorded wait here."""
    db["early_receipts"].create({"gateway_id": str, "status": str, "error": str, "at": float},
                                pk="gateway_id")


def _m5_advocacy(db: sqlite_utils.Database) -> None:
    """Outcomes advocates record on handed-off conversations; an index for their queue."""
    db["advocate_outcomes"].create({
        "id": int, "conversation_id": int, "kind": str, "note": str, "author": str, "at": float,
    }, pk="id", foreign_keys=[("conversation_id", "conversations", "id")],
        not_null={"conversation_id", "kind", "author", "at"})
    db["advocate_outcomes"].create_index(["conversation_id", "at"])
    db["advocate_outcomes"].create_index(["kind"])
    db.execute("CREATE INDEX conversations_queue ON conversations(id) "
               "WHERE status = 'handed_off' OR operator = 1")


def _m6_media(db: sqlite_utils.Database) -> None:
    """Photos and other media that came with inbound messages, fetched to disk by SHA-256."""
    db["media"].create({
        "id": int, "conversation_id": int, "inbound_seq": int, "position": int, "url": str,
        "status": str, "sha256": str, "content_type": str, "size": int, "error": str,
        "attempts": int, "next_attempt_at": float, "created_at": float, "fetched_at": float,
    }, pk="id", foreign_keys=[("conversation_id", "conversations", "id"),
                              ("inbound_seq", "inbound", "seq")],
        not_null={"conversation_id", "inbound_seq", "position", "url", "status"},
        defaults={"status": "pending", "attempts": 0})
    db["media"].create_index(["conversation_id"])
    db["media"].create_index(["sha256"])
    db["media"].create_index(["inbound_seq", "position"], unique=True)
    db.execute("CREATE INDEX media_pending ON media(next_attempt_at) WHERE status = 'pending'")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_core, _m2_effects, _m3_operators, _m4_early_receipts, _m5_advocacy, _m6_media]


def migrate(db: sqlite_utils.Database) -> int:
    """Apply the migrations this database lacks; return the schema version."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise sqlite3.DatabaseError(f"the database is at schema version {current}, newer than this "
                           f"Intercept ({len(MIGRATIONS)}): upgrade Intercept")
    for version, migration in enumerate(MIGRATIONS[current:], start=current + 1):
        db.execute("BEGIN")
        try:
            migration(db)
            db.execute(f"PRAGMA user_version = {version}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)
