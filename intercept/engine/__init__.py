"""The pure conversation engine: scenario files compiled into state machines.

Nothing in this package does I/O beyond reading a scenario file, reads the clock, or draws
global randomness; `tests/test_engine_purity.py` enforces it.
"""

from .compiler import CONTEXT_VARS, LOOKUP_KINDS, compile_text, load_scenario
from .events import (
    CancelTimer,
    Capture,
    ConversationState,
    Effect,
    End,
    Event,
    HandOff,
    Lookup,
    LookupResult,
    Message,
    OptIn,
    OptOut,
    Resume,
    Send,
    SetTimer,
    Start,
    Tag,
    TimerFired,
    Transition,
    Webhook,
    WebhookResult,
)
from .machine import Machine

__all__ = [
    "CONTEXT_VARS", "LOOKUP_KINDS", "CancelTimer", "Capture", "ConversationState", "Effect",
    "End", "Event", "HandOff", "Lookup", "LookupResult", "Machine", "Message", "OptIn",
    "OptOut", "Resume", "Send", "SetTimer", "Start", "Tag", "TimerFired", "Transition",
    "Webhook", "WebhookResult", "compile_text", "load_scenario",
]
