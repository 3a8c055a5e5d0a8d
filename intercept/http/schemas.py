"""The JSON shapes of the HTTP API: every request body, query and response is a Struct here.

`/api/openapi.json` is generated from these (see `openapi.py`), so a docstring here is the
description a client reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ..store.advocacy import OUTCOME_KINDS


class Model(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every API shape: an unknown field is an error, not ignored."""


Status = Literal["new", "active", "ended", "handed_off", "parked"]
OutcomeKind = Literal["positive_conversation", "meeting_scheduled", "connected_to_services",
                      "other"]
assert set(OutcomeKind.__args__) == set(OUTCOME_KINDS)  # type: ignore[attr-defined]
RoleName = Literal["viewer", "advocate", "admin"]
Limit = Annotated[int, Meta(ge=1, le=500, description="Page size (1 to 500).")]
Offset = Annotated[int, Meta(ge=0, description="Items to skip.")]


class ErrorBody(Model):
    """Any 4xx/5xx answer: a sentence saying what is wrong."""

    error: str


# -- the public endpoints


class Health(Model, forbid_unknown_fields=False):
    """GET /healthz. More keys may appear."""

    status: str
    gateway: str
    live_actors: int
    outbox_depth: int
    store_id: str = ""
    """The store's random id: the CLI checks it reached the server of its own store."""


class SimInbound(Model, rename={"from_": "from"}):
    """POST /sim/messages: a simulated phone texts one of our numbers."""

    from_: str
    to: str
    text: str
    id: str | None = None
    media: list[str] = []


class SimIngested(Model):
    conversation_id: int
    sequence: int
    duplicate: bool


class SimMessage(Model, rename={"from_": "from"}):
    at: float
    from_: str
    to: str
    text: str


class SimReceivedQuery(Model):
    to: str | None = None
    """Only the messages to this number."""


class SimReceived(Model):
    """What the simulated phones received, oldest first."""

    messages: list[SimMessage]


# -- conversations


class Me(Model):
    """The caller, as the server sees its token."""

    name: str
    role: RoleName


class ConversationQuery(Model):
    """Filters of GET /api/conversations (all optional, combined with AND)."""

    status: Status | None = None
    outcome: str | None = None
    """The scenario's outcome, e.g. deterred, finished."""
    city: str | None = None
    """A key of [cities] in the config."""
    scenario: str | None = None
    version: int | None = None
    since: str | None = None
    """Started at or after this date (YYYY-MM-DD, UTC) or ISO 8601 time."""
    until: str | None = None
    """Started before this time; a date YYYY-MM-DD includes that whole day (UTC)."""
    operator: bool | None = None
    """true: a human has taken it over."""
    tag: str | None = None
    number: str | None = None
    """Their phone number, exactly (advocate and admin only)."""
    limit: Limit = 50
    offset: Offset = 0


class Conversation(Model):
    """A conversation. `their_number` is masked (+1•••••••99) for the viewer role."""

    id: int
    our_number: str
    their_number: str
    city: str | None
    scenario: str | None
    version: int | None
    status: str
    """new, active, ended, handed_off or parked."""
    outcome: str | None
    operator: bool
    """A human has taken it over: the bot is silent until it is handed back."""
    messages_in: int
    messages_out: int
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    language: str = ""
    """The conversation's language (en, es...) in a scenario of several; "" otherwise."""


class ConversationPage(Model):
    total: int
    limit: int
    offset: int
    items: list[Conversation]


class TranscriptEntry(Model):
    """One message. Out: `kind` is reply (the bot), operator (a human) or confirmation."""

    direction: Literal["in", "out"]
    at: datetime
    """In: when it arrived. Out: when it was sent (or is due, while queued)."""
    id: str
    text: str
    media: list[str] = []
    kind: str | None = None
    status: str | None = None
    """Out: queued, sending, sent, delivered, failed, unknown or refused."""
    error: str | None = None
    sent_by: str | None = None
    """Out, kind operator: the advocate who wrote it."""


class TagEntry(Model):
    name: str
    at: datetime


class TransitionEntry(Model):
    turn: int
    source: str
    target: str
    trigger: str
    scenario: str
    version: int
    at: datetime


class Outcome(Model):
    """An outcome an advocate recorded."""

    id: int
    conversation_id: int
    kind: OutcomeKind
    note: str
    author: str
    at: datetime


class ConversationDetail(Model):
    conversation: Conversation
    transcript: list[TranscriptEntry]
    tags: list[TagEntry]
    transitions: list[TransitionEntry]
    outcomes: list[Outcome]
    handoff: Handoff | None = None
    """The open hand-off, if a person has the conversation."""


class OperatorMessage(Model):
    """POST /api/conversations/{id}/messages: a human texts into the conversation."""

    text: Annotated[str, Meta(min_length=1, max_length=1600)]


class OperatorMessageQueued(Model):
    id: str
    """The outbox id of the message."""
    conversation_id: int
    status: Literal["queued"] = "queued"


class HandBackRequest(Model):
    """POST /api/conversations/{id}/hand-back takes no fields (an empty body is fine)."""


class HandedBack(Model):
    conversation_id: int
    operator: bool = False


class OutcomeRequest(Model):
    """POST /api/conversations/{id}/outcomes. Kind `other` needs a note."""

    kind: OutcomeKind
    note: Annotated[str, Meta(max_length=2000)] = ""


class OutcomeList(Model):
    items: list[Outcome]


# -- the hand-off queue, stats, reload, audit


class PageQuery(Model):
    limit: Limit = 50
    offset: Offset = 0


class QueueEntry(Model):
    conversation: Conversation
    waiting_since: datetime | None
    """Since when the person has been waiting for a human; null when a human answered last."""
    unanswered: int
    """Their messages since our last one."""
    last_message_at: datetime | None
    outcomes: list[OutcomeKind]


class QueuePage(Model):
    total: int
    limit: int
    offset: int
    items: list[QueueEntry]


class ScenarioCount(Model):
    scenario: str
    version: int
    conversations: int


class Stats(Model):
    conversations: int
    by_status: dict[str, int]
    by_outcome: dict[str, int]
    by_scenario: list[ScenarioCount]
    by_city: dict[str, int]
    messages_in: int
    messages_out: dict[str, int]
    """Outbound messages by status."""
    with_a_human: int
    """Conversations in the hand-off queue."""
    opted_out: int
    advocate_outcomes: dict[str, int]
    live_actors: int
    outbox_depth: int


class ReloadedNumbers(Model):
    """How a reload changed the config's [[numbers]] and [cities]."""

    added: int
    """Numbers of the config file the server did not have."""
    removed: int
    changed: int
    """Numbers with another persona, city, scenario or kind."""
    cities: list[str]
    """[cities] keys added, removed or changed."""


class ReloadResult(Model, omit_defaults=True):
    ok: bool
    summary: str
    added: list[str]
    """Scenario versions loaded ("name vN")."""
    unchanged: list[str]
    numbers: ReloadedNumbers | None = None
    """Only when the numbers or cities changed."""


class ReloadRefused(Model):
    ok: bool
    errors: list[str]


# -- campaigns (victim outreach)


class CampaignQuery(Model):
    name: str | None = None
    """Only this campaign (404 if the config has none of that name)."""


class CampaignRequest(Model):
    """POST /api/campaigns/start and /api/campaigns/pause: which campaign."""

    name: Annotated[str, Meta(min_length=1, max_length=64)]


class CampaignSkipped(Model):
    """Numbers the campaign decided not to text, by reason."""

    opted_out: int = 0
    recent: int = 0
    """Texted by a campaign within contact_again_after."""
    in_conversation: int = 0
    """Already talking with one of our outreach numbers."""
    no_window: int = 0
    """The window is never open in all of the number's possible time zones at once."""


class CampaignStatus(Model):
    """A campaign's live progress. Numbers come from the ads imported for its city."""

    name: str
    city: str
    status: Literal["running", "paused", "idle"]
    """idle: never started."""
    scenario: str
    numbers: list[str]
    """Our sending numbers."""
    window: str
    """When texts go out, in each recipient's local time."""
    started_at: datetime | None
    targets: int
    """Numbers found in the city's ads: texted + skipped + held + waiting."""
    texted: int
    """Conversations started by the campaign's first text."""
    sent: int
    """First texts the gateway took (sent or delivered)."""
    queued: int
    """First texts not submitted yet."""
    failed: int
    """First texts refused, failed or of unknown outcome."""
    held: int
    """Numbers still to text that are outside their window now (quiet hours)."""
    waiting: int
    """Numbers still to text inside their window, waiting for the rates."""
    skipped: CampaignSkipped
    replied: int
    """Texted numbers that answered."""
    handed_off: int
    """Conversations with an advocate (handed off, taken over, or with an outcome)."""
    opted_out: int
    """Texted numbers that have opted out since."""


class CampaignList(Model):
    items: list[CampaignStatus]


class NumberHealthItem(Model):
    number: str
    kind: str
    settled: int
    """Messages delivered or failed in the window."""
    delivered: int
    failed: int
    failure_share: float
    reasons: dict[str, int]
    """Failures by reason: carrier_filtered, unregistered_sender, carrier_opt_out, blocked,
    unreachable, expired, rejected, other."""
    paused: bool
    """Campaigns do not send from it while its failed share is at or above pause_share."""


class NumberHealthList(Model):
    window: str
    """[health] window: how far back settled messages count."""
    checked_at: float | None
    """When the server last read it (every [health] interval)."""
    items: list[NumberHealthItem]


class CampaignChanged(Model):
    campaign: CampaignStatus
    previous: Literal["running", "paused", "idle"]
    """Its status before this request."""


class AuditQuery(Model):
    actor: str | None = None
    conversation_id: int | None = None
    limit: Limit = 50
    offset: Offset = 0


class AuditEntry(Model):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    conversation_id: int | None
    status: int
    detail: str


class AuditPage(Model):
    total: int
    limit: int
    offset: int
    items: list[AuditEntry]



# -- retention


class PurgeRequest(Model):
    """POST /api/purge: delete conversations idle for longer than `older_than`."""

    older_than: Annotated[str, Meta(min_length=1, max_length=32)]
    """A duration of at least a day, e.g. 180d."""
    kind: Literal["buyer", "outreach"] = "buyer"
    dry_run: bool = False
    """Only count what would be deleted."""


class PurgeResult(Model):
    kind: Literal["buyer", "outreach"]
    cutoff: datetime
    """Conversations whose last activity is before this were deleted."""
    dry_run: bool
    conversations: int
    messages_in: int
    messages_out: int
    media: int
    """Media rows (photos) of those conversations."""
    files_deleted: int
    """Media files no remaining row referred to, deleted from media.dir."""
    skipped: int
    """Old enough but kept: a reply still to send, or an outreach conversation whose number
    also has buyer conversations."""

OpenApiDocument = dict[str, Any]


# -- hand-offs: the advocates' inbox (claim, release, assign, notes)

Priority = Literal["normal", "urgent"]


class Handoff(Model):
    """A conversation given to a person: by the scenario (`source` scenario), or taken over
    by an advocate who texted first (takeover); `backfill` ones predate hand-offs."""

    id: int
    conversation_id: int
    priority: Priority
    reason: str
    source: Literal["scenario", "takeover", "backfill"]
    opened_at: datetime
    claimed_by: str | None = None
    """The advocate who holds it: only they may text into the conversation."""
    claimed_at: datetime | None = None
    first_reply_at: datetime | None = None
    """When an advocate first texted the person after it opened."""
    closed_at: datetime | None = None
    outcome: str | None = None
    """How it closed: handed_back."""


class HandoffEntry(Model):
    handoff: Handoff
    conversation: Conversation
    waiting_seconds: float
    """Since it opened (a waiting one), or until an advocate first answered."""
    notes: int
    """Internal notes on this hand-off."""


class HandoffPage(Model):
    total: int
    limit: int
    offset: int
    items: list[HandoffEntry]


class ClaimRequest(Model):
    """POST /api/conversations/{id}/claim and /release take no fields (an empty body is
    fine)."""


class AssignRequest(Model):
    """POST /api/conversations/{id}/assign: the advocate (token name) to hold the hand-off."""

    advocate: Annotated[str, Meta(min_length=1, max_length=100)]


class HandoffChanged(Model):
    handoff: Handoff
    previous: str | None
    """Who held it before."""


class NoteRequest(Model):
    """POST /api/conversations/{id}/notes: an internal note, never sent to anyone."""

    text: Annotated[str, Meta(min_length=1, max_length=4000)]


class Note(Model):
    id: int
    conversation_id: int
    handoff_id: int | None
    """The hand-off open when it was written."""
    author: str
    text: str
    at: datetime


class NoteList(Model):
    items: list[Note]


# -- the impact report


class ReportQuery(Model):
    """GET /api/report: what `intercept report --json` prints, for a period and a city."""

    since: str | None = None
    """Only what started on or after this date (YYYY-MM-DD, UTC) or ISO 8601 time."""
    city: str | None = None
    """A key of [cities] in the config."""
    period: Literal["month", "quarter", "year", "all"] = "month"
    """Return contacts per city and this period of the buyer's first contact (UTC)."""


class ImpactReport(Model):
    """Counts and rates only: never a number or a message (docs/outreach.md, the impact
    report)."""

    since: str | None
    cities: list[dict[str, Any]]
    """Per city: victim outreach (numbers found, contacted, replied, opted out, handed off,
    positive, meetings, services) and buyer deterrence (buyers, conversations, messages,
    deterrence sent, median length and time wasted)."""
    total: dict[str, Any]
    returns: list[dict[str, Any]]
    """Per city and period: deterred buyers and those who left before deterrence, and how many
    of each came back within 30 and 90 days, with 95% Wilson intervals."""
