"""Database schema, as numbered migrations applied in order (tracked in PRAGMA user_version)."""

from __future__ import annotations

import secrets
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


def _m7_outreach(db: sqlite_utils.Database) -> None:
    """Victim outreach: ads and the numbers found in them, campaigns and the numbers they
    texted, and the kind of every conversation (buyer or outreach), so the two never mix.

    A new conversation takes the kind of its number of ours from `number_kinds` (filled from
    the config at start-up); a number missing there leaves the kind NULL, which no buyer query
    returns.
    """
    db["conversations"].add_column("kind", str)
    db["conversations"].create_index(["their_number"])
    db["number_kinds"].create({"number": str, "kind": str, "city": str, "updated_at": float},
                              pk="number", not_null={"kind"})
    db.execute("CREATE TRIGGER conversations_kind AFTER INSERT ON conversations "
               "WHEN NEW.kind IS NULL BEGIN UPDATE conversations SET kind = "
               "(SELECT kind FROM number_kinds WHERE number = NEW.our_number) "
               "WHERE id = NEW.id; END")
    db["ads"].create({
        "id": int, "source": str, "external_id": str, "city": str, "url": str,
        "text_hash": str, "posted_at": float, "first_seen": float, "last_seen": float,
        "seen": int,
    }, pk="id", not_null={"source", "city", "text_hash", "first_seen", "last_seen", "seen"})
    db["ads"].create_index(["source", "external_id"], unique=True)
    db["ads"].create_index(["text_hash"], unique=True)
    db["ad_numbers"].create({"ad_id": int, "number": str}, pk=("ad_id", "number"),
                            foreign_keys=[("ad_id", "ads", "id")])
    db["ad_numbers"].create_index(["number"])
    db["found_numbers"].create({"number": str, "city": str, "first_seen": float,
                                "last_seen": float}, pk=("number", "city"))
    db["found_numbers"].create_index(["city", "first_seen"])
    db["campaigns"].create({"name": str, "status": str, "started_at": float,
                            "updated_at": float, "actor": str}, pk="name",
                           not_null={"status"})
    db["campaign_targets"].create({
        "campaign": str, "number": str, "city": str, "status": str, "conversation_id": int,
        "our_number": str, "variant": str, "at": float,
    }, pk=("campaign", "number"), not_null={"status", "at"})
    db.execute("CREATE INDEX campaign_texts ON campaign_targets(number, at) "
               "WHERE status = 'sent'")
    db["campaign_targets"].create_index(["conversation_id"])


def _m8_evidence(db: sqlite_utils.Database) -> None:
    """Buyer intelligence: offline number metadata, cached lookups and their daily use, and
    the counts of purged conversations that the impact report adds back in."""
    db["number_info"].create({
        "number": str, "valid": int, "type": str, "region": str, "place": str,
        "timezone": str, "carrier": str, "computed_at": float,
    }, pk="number")
    db["lookup_cache"].create({
        "number": str, "kind": str, "provider": str, "data": str, "fetched_at": float,
        "expires_at": float,
    }, pk=("number", "kind"), not_null={"data", "fetched_at", "expires_at"})
    db["lookup_usage"].create({"day": str, "provider": str, "requests": int},
                              pk=("day", "provider"), not_null={"requests"})
    db["purged"].create({
        "id": int, "purged_at": float, "kind": str, "city": str, "day": str,
        "conversations": int, "buyers": int, "messages_in": int, "messages_out": int,
        "deterred": int, "lengths": str, "durations": str, "replied": int, "opted_out": int,
        "handed_off": int, "positive": int, "meetings": int, "connected": int,
        "contacted": int,
    }, pk="id", not_null={"purged_at", "kind", "city", "day"})
    db["purged"].create_index(["kind", "city", "day"])


def _m9_api_tokens(db: sqlite_utils.Database) -> None:
    """Admin API tokens made with `intercept token create`: only their SHA-256 is kept."""
    db["api_tokens"].create({"name": str, "role": str, "digest": str, "created_at": float,
                             "last_used_at": float}, pk="name",
                            not_null={"role", "digest", "created_at"})
    db["api_tokens"].create_index(["digest"], unique=True)


def _m10_tombstones(db: sqlite_utils.Database) -> None:
    """The SHA-256 of (gateway, message id) of purged inbound messages, so that a gateway
    replaying one after a purge is refused (intercept/store/tombstones.py)."""
    db.execute("CREATE TABLE tombstones (digest TEXT PRIMARY KEY, purged_at REAL NOT NULL) "
               "WITHOUT ROWID")
    db.execute("CREATE INDEX tombstones_purged_at ON tombstones(purged_at)")


def _m11_number_health(db: sqlite_utils.Database) -> None:
    """Settled outbox rows by time: number health reads the recent ones."""
    db.execute("CREATE INDEX outbox_settled ON outbox(updated_at) "
               "WHERE status IN ('delivered', 'failed')")


def _m12_handoffs(db: sqlite_utils.Database) -> None:
    """Hand-offs as things of their own: priority, who claimed one, when an advocate first
    answered, when it closed and how; advocates' internal notes; and which advocate sent each
    operator message. The conversations with a human today get an open hand-off each (marked
    as alerted: they were waiting before alerts existed)."""
    db["handoffs"].create({
        "id": int, "conversation_id": int, "priority": str, "reason": str, "source": str,
        "opened_at": float, "claimed_by": str, "claimed_at": float, "first_reply_at": float,
        "closed_at": float, "outcome": str, "alerted_at": float,
    }, pk="id", foreign_keys=[("conversation_id", "conversations", "id")],
        not_null={"conversation_id", "priority", "source", "opened_at"},
        defaults={"priority": "normal", "source": "scenario"})
    db["handoffs"].create_index(["conversation_id"])
    db.execute("CREATE UNIQUE INDEX handoffs_open_one ON handoffs(conversation_id) "
               "WHERE closed_at IS NULL")
    db.execute("CREATE INDEX handoffs_open ON handoffs(priority, opened_at) "
               "WHERE closed_at IS NULL")
    db["handoff_notes"].create({
        "id": int, "conversation_id": int, "handoff_id": int, "author": str, "text": str,
        "at": float,
    }, pk="id", foreign_keys=[("conversation_id", "conversations", "id"),
                              ("handoff_id", "handoffs", "id")],
        not_null={"conversation_id", "author", "text", "at"})
    db["handoff_notes"].create_index(["conversation_id", "at"])
    db["outbox"].add_column("sent_by", str)
    db.execute("INSERT INTO handoffs (conversation_id, priority, reason, source, opened_at, "
               "alerted_at) SELECT id, 'normal', '', 'backfill', coalesce(updated_at, "
               "created_at, 0), coalesce(updated_at, created_at, 0) FROM conversations "
               "WHERE status = 'handed_off' OR operator = 1")


def _m13_store_identity(db: sqlite_utils.Database) -> None:
    """The store's id, 16 random hex digits (intercept/store/identity.py): the CLI checks it
    reached the server of its own store."""
    db.execute("CREATE TABLE store_identity (id TEXT NOT NULL)")
    db.execute("INSERT INTO store_identity (id) VALUES (?)", (secrets.token_hex(8),))


def _m14_fewer_pages(db: sqlite_utils.Database) -> None:
    """Indexes the hot path changes less: a step that moves a conversation's timer no longer
    moves its entry in an index of (status, timer), and a reply queued without a gateway id
    has no entry in the gateway-id index (docs/performance.md, "Pages changed per text")."""
    db.execute("DROP INDEX idx_conversations_status_timer_at")
    db.execute("CREATE INDEX conversations_status ON conversations(status)")
    db.execute("DROP INDEX idx_outbox_gateway_id")
    db.execute("CREATE INDEX outbox_gateway_id ON outbox(gateway_id) "
               "WHERE gateway_id IS NOT NULL")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_core, _m2_effects, _m3_operators, _m4_early_receipts, _m5_advocacy, _m6_media,
    _m7_outreach, _m8_evidence, _m9_api_tokens, _m10_tombstones, _m11_number_health,
    _m12_handoffs, _m13_store_identity, _m14_fewer_pages]


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
