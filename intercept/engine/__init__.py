"""The pure conversation engine: scenario files compiled into state machines.

Nothing in this package does I/O beyond reading a scenario file, reads the clock, or draws
global randomness; `tests/test_engine_purity.py` enforces it.
"""

from .compiler import CONTEXT_VARS, compile_text, load_scenario
from .machine import (
    CancelTimer,
    Capture,
    ConversationState,
    Effect,
    End,
    Event,
    Machine,
    Message,
    Send,
    SetTimer,
    Start,
    TimerFired,
)

__all__ = [
    "CONTEXT_VARS", "CancelTimer", "Capture", "ConversationState", "Effect", "End", "Event",
    "Machine", "Message", "Send", "SetTimer", "Start", "TimerFired", "compile_text",
    "load_scenario",
]
