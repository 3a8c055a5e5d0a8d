"""Buyer profiles: one per buyer number, across all our numbers and cities.

Plain read functions of a (read-only) connection. A profile is built from the conversations a
query selects — buyer data only: the gate is `store.reads.buyer_conversation_ids` (kind
``buyer``, and never a number found in ads, texted by a campaign or talking with an outreach
number) — so a profile never shows a victim's conversation, and a number that appears on both
sides has no profile at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..store.buyer_reads import (
    ConversationRecord,
    PhotoRow,
    cached_lookups,
    cities_of_numbers,
    conversation_record,
    conversations_with,
    number_info,
)
from ..store.reads import buyer_conversation_ids

CONTEXT_PREFIXES = ("persona.", "city.")
NOT_CAPTURED = frozenset({"message"})


def iso(ts: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC with milliseconds (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


Photo = PhotoRow
"""One media item he sent: its status is stored (the file is in media.dir), pending, refused
or failed."""


@dataclass(slots=True)
class Deterrence:
    conversation_id: int
    city: str
    link: str | None
    """The link the message carried (the city's link when the conversation started)."""
    at: float | None
    """When it went out (or is due, while queued)."""
    status: str | None
    """The outbox status of the message that carried the link."""


@dataclass(slots=True)
class ConversationSummary:
    id: int
    our_number: str
    city: str
    persona: str
    scenario: str | None
    version: int | None
    status: str
    outcome: str | None
    started_at: float
    last_activity: float
    messages_in: int
    messages_out: int
    tags: list[str]
    captured: dict[str, str]
    """Variables the scenario captured from his words or set (offer, when, meet, ...)."""
    lookups: dict[str, dict[str, str]]
    """Lookup answers the scenario received, by kind (number, caller_name, buyer, ...)."""
    deterrence: Deterrence | None
    photos: list[Photo]
    outcomes: list[str]
    """Outcomes advocates recorded."""


@dataclass(slots=True)
class Profile:
    number: str
    conversations: list[ConversationSummary] = field(default_factory=list)
    number_info: dict[str, Any] | None = None
    """Offline metadata (phonenumbers): valid, type, region, place, timezone, carrier."""
    cached_lookups: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Lookups made for the number (table lookup_cache), by kind."""

    @property
    def first_seen(self) -> float:
        return min(c.started_at for c in self.conversations)

    @property
    def last_seen(self) -> float:
        return max(c.last_activity for c in self.conversations)

    @property
    def cities(self) -> list[str]:
        return sorted({c.city for c in self.conversations})

    @property
    def messages_in(self) -> int:
        return sum(c.messages_in for c in self.conversations)

    @property
    def messages_out(self) -> int:
        return sum(c.messages_out for c in self.conversations)

    @property
    def photos(self) -> list[Photo]:
        return [p for c in self.conversations for p in c.photos]

    @property
    def deterrence(self) -> list[Deterrence]:
        return [c.deterrence for c in self.conversations if c.deterrence is not None]

    @property
    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.conversations:
            if c.outcome:
                counts[c.outcome] = counts.get(c.outcome, 0) + 1
        return counts

    @property
    def captured(self) -> dict[str, list[str]]:
        """Every distinct value of each captured variable, in conversation order."""
        merged: dict[str, list[str]] = {}
        for c in self.conversations:
            for name, value in c.captured.items():
                values = merged.setdefault(name, [])
                if value not in values:
                    values.append(value)
        return merged

    def as_json(self, *, number: str | None = None) -> dict[str, Any]:
        """The profile as JSON-ready data; `number` replaces the number (e.g. masked)."""
        return {
            "number": number or self.number,
            "first_seen": iso(self.first_seen), "last_seen": iso(self.last_seen),
            "cities": self.cities,
            "conversations": [conversation_json(c) for c in self.conversations],
            "messages_in": self.messages_in, "messages_out": self.messages_out,
            "captured": self.captured,
            "photos": [_photo_json(p) for p in self.photos],
            "number_info": self.number_info,
            "lookups": self.cached_lookups,
            "outcomes": self.outcomes,
            "deterrence": [_deterrence_json(d) for d in self.deterrence],
        }


def _photo_json(p: Photo) -> dict[str, Any]:
    return {"media_id": p.media_id, "conversation_id": p.conversation_id, "status": p.status,
            "sha256": p.sha256, "content_type": p.content_type, "size": p.size,
            "received_at": iso(p.received_at), "error": p.error}


def _deterrence_json(d: Deterrence) -> dict[str, Any]:
    return {"conversation_id": d.conversation_id, "city": d.city, "link": d.link,
            "at": iso(d.at), "status": d.status,
            "sent": d.status in ("sent", "delivered")}


def conversation_json(c: ConversationSummary) -> dict[str, Any]:
    return {"id": c.id, "our_number": c.our_number, "city": c.city, "persona": c.persona,
            "scenario": c.scenario, "version": c.version, "status": c.status,
            "outcome": c.outcome, "started_at": iso(c.started_at),
            "last_activity": iso(c.last_activity), "messages_in": c.messages_in,
            "messages_out": c.messages_out, "tags": c.tags, "captured": c.captured,
            "lookups": c.lookups,
            "deterrence": None if c.deterrence is None else _deterrence_json(c.deterrence),
            "photos": [p.media_id for p in c.photos], "advocate_outcomes": c.outcomes}


def selected_conversations(conn: sqlite3.Connection, *, our_numbers: tuple[str, ...] | None = None,
                           since: float | None = None, until: float | None = None,
                           number: str | None = None) -> list[int]:
    """Buyer conversation ids (oldest first) on `our_numbers`, started in [since, until), of
    `number`; only what `buyer_conversation_ids` admits."""
    ids = buyer_conversation_ids(conn, since=since, until=until, our_numbers=our_numbers)
    if number is None:
        return ids
    return conversations_with(conn, number, ids)


def buyer_profiles(conn: sqlite3.Connection, ids: list[int], *,
                   city_of: Mapping[str, str] | None = None) -> list[Profile]:
    """The profiles of the buyers in conversations `ids`, built from those conversations only;
    sorted by first contact. `city_of` maps our numbers to cities the store does not know."""
    known = cities_of_numbers(conn)
    fallback = dict(city_of or {})
    profiles: dict[str, Profile] = {}
    for cid in ids:
        record = conversation_record(conn, cid)
        summary = _summary(record, known.get(record.our_number)
                           or fallback.get(record.our_number) or "unknown")
        profiles.setdefault(record.their_number,
                            Profile(record.their_number)).conversations.append(summary)
    for number, profile in profiles.items():
        info = number_info(conn, number)
        if info is not None:
            profile.number_info = {
                "valid": info.valid, "type": info.type, "region": info.region,
                "place": info.place, "timezone": info.timezone, "carrier": info.carrier,
                "computed_at": iso(info.computed_at)}
        for cached in cached_lookups(conn, number):
            profile.cached_lookups[cached.kind] = {
                "provider": cached.provider, "fetched_at": iso(cached.fetched_at),
                "data": cached.data}
    return sorted(profiles.values(), key=lambda p: (p.first_seen, p.number))


def _summary(record: ConversationRecord, city: str) -> ConversationSummary:
    variables: dict[str, str] = json.loads(record.state).get("vars", {}) if record.state else {}
    captured = {k: v for k, v in variables.items()
                if "." not in k and k not in NOT_CAPTURED}
    lookups: dict[str, dict[str, str]] = {}
    for key, value in variables.items():
        kind, dot, name = key.partition(".")
        if dot and not key.startswith(CONTEXT_PREFIXES):
            lookups.setdefault(kind, {})[name] = value
    out_rows = record.outbox
    times = [t for t in (record.created_at, record.updated_at, record.last_inbound_at,
                         *(r.at for r in out_rows)) if t]
    deterrence = None
    if record.outcome == "deterred":
        link = variables.get("city.link") or None
        carrier = next((r for r in out_rows if link and link in (r.body or "")), None)
        if carrier is None:  # a scenario that sends no link: its last reply
            carrier = next((r for r in reversed(out_rows) if r.kind == "reply"), None)
            link = None
        deterrence = Deterrence(record.id, city, link, carrier.at if carrier else None,
                                carrier.status if carrier else None)
    return ConversationSummary(
        id=record.id, our_number=record.our_number, city=city,
        persona=variables.get("persona.name", ""), scenario=record.scenario,
        version=record.version, status=record.status, outcome=record.outcome,
        started_at=record.created_at or 0.0, last_activity=max(times) if times else 0.0,
        messages_in=record.inbound_count or 0, messages_out=len(out_rows), tags=record.tags,
        captured=captured, lookups=lookups, deterrence=deterrence, photos=record.photos,
        outcomes=record.outcomes)
