"""The engine's contract with the runtime: conversation state, events in, effects out.

The runtime feeds events to `Machine.step(state, event, now)` and carries out the effects it
gets back. Every type here is a `msgspec.Struct`; states are stored as JSON.
"""

from __future__ import annotations

import msgspec

# ---------------------------------------------------------------------------------------------
# State


class ConversationState(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Everything the engine needs to continue a conversation; stored as JSON after each step."""

    scenario: str
    version: int
    node: str = ""
    vars: dict[str, str] = {}
    rng: int = 0
    turn: int = 0
    timer_at: float | None = None
    """When the runtime must send `TimerFired` (the earliest of the engine's deadlines)."""
    outcome: str | None = None
    paused: bool = False
    """Handed off to a human: the bot stays silent until a `Resume` event."""
    visits: dict[str, int] = {}
    deadlines: dict[str, float] = {}
    """The engine's own named deadlines (state timeout, expiry...); `timer_at` is their min."""
    returns: list[str] = []
    """States interrupted by a global handler, most recent last (for its `return`)."""
    heard: int = 0
    """The person's texts heard while the language is undecided; -1 once it is settled."""
    sample: str = ""
    """Those texts, joined: what the language is identified from (cleared once settled)."""

    @property
    def started(self) -> bool:
        return self.turn > 0

    @property
    def ended(self) -> bool:
        return self.outcome is not None


# ---------------------------------------------------------------------------------------------
# Events (runtime -> engine)


class Start(msgspec.Struct, tag="start"):
    """Enter the scenario's start state (first inbound message, or a campaign's first send)."""


class Message(msgspec.Struct, tag="message"):
    """A text from the other side (several merged fragments are joined with newlines)."""

    text: str
    media: tuple[str, ...] = ()
    """URLs (or store ids) of media that came with the message."""
    language: str = ""
    """The language the runtime identified (see `Machine.language_sample`), "" for none."""
    confidence: float = 0.0
    """How sure that identification is, 0 to 1."""


class TimerFired(msgspec.Struct, tag="timer"):
    """The runtime's timer went off; the engine checks which of its deadlines are due."""


class LookupResult(msgspec.Struct, tag="lookup_result"):
    """The answer to a `Lookup` effect (caller name, number metadata...)."""

    kind: str
    ok: bool
    data: dict[str, str] = {}


class Resume(msgspec.Struct, tag="resume"):
    """An operator hands a paused (handed-off) conversation back to the bot."""

    state: str = ""
    """The state to pick up at; empty for the one the scenario names (`handoff.resume`)."""


class WebhookResult(msgspec.Struct, tag="webhook_result"):
    """The answer to a `Webhook` effect: `ok` for a 2xx reply, whose top-level scalar JSON
    fields are `fields`; else `error` is timeout, failed or refused."""

    call: str
    ok: bool
    status: int = 0
    """The HTTP status of the reply (0: none)."""
    error: str = ""
    fields: dict[str, str] = {}


Event = Start | Message | TimerFired | LookupResult | Resume | WebhookResult


# ---------------------------------------------------------------------------------------------
# Effects (engine -> runtime)


class Send(msgspec.Struct, tag="send"):
    """Send `text`. The runtime adds a human-like delay, scaled by `delay_scale`, plus `extra`
    seconds (an occasional "busy" pause)."""

    text: str
    delay_scale: float = 1.0
    extra: float = 0.0


class SetTimer(msgspec.Struct, tag="set_timer"):
    at: float


class CancelTimer(msgspec.Struct, tag="cancel_timer"):
    pass


class Capture(msgspec.Struct, tag="capture"):
    """A variable was set from the other side's words (for evidence and stats)."""

    name: str
    value: str


class Tag(msgspec.Struct, tag="tag"):
    """Label the conversation (searchable by operators)."""

    name: str


class Lookup(msgspec.Struct, tag="lookup"):
    """Ask the runtime for a lookup; its answer comes back as a `LookupResult` event."""

    kind: str


class Webhook(msgspec.Struct, tag="webhook"):
    """Call the configured webhook `call` with `payload` (the variables the scenario chose);
    its answer comes back as a `WebhookResult` event."""

    call: str
    payload: dict[str, str] = {}


class HandOff(msgspec.Struct, tag="hand_off"):
    """Give the conversation to a human advocate; the engine stays silent until `Resume`."""

    reason: str = ""
    priority: str = "normal"
    """normal or urgent (the scenario's `handoff.priority`)."""


class OptOut(msgspec.Struct, tag="opt_out"):
    """The other side opted out: never text this number again except `confirmation`, once."""

    confirmation: str = ""


class OptIn(msgspec.Struct, tag="opt_in"):
    """The other side opted back in (START / UNSTOP)."""

    confirmation: str = ""


class Transition(msgspec.Struct, tag="transition"):
    """The conversation moved from `source` to `target` because of `trigger` (for the funnel).

    `source` is "" for the start; `trigger` names what fired: "start", "expect[2]", "timeout",
    "goto", "global:<name>", "expired", "lookup", ...
    """

    source: str
    target: str
    trigger: str


class End(msgspec.Struct, tag="end"):
    """The conversation is over, with this outcome (deterred, expired, handed_off...)."""

    outcome: str


Effect = (Send | SetTimer | CancelTimer | Capture | Tag | Lookup | HandOff | OptOut | OptIn
          | Transition | End | Webhook)
