"""The scenario file format, as msgspec Structs.

A scenario is a set of named states. Entering a state sends its messages (`say`), then either
waits for a reply (`expect`, with an optional no-reply `timeout`), moves straight on (`goto`)
or ends the conversation with an outcome (`end`). See docs/scenarios.md for the reference.
"""

from __future__ import annotations

import msgspec

# `say` is one message, or a list of variants (one is picked at random on each visit); a variant
# that is itself a list is sent as several messages in a row.
Say = str | list[str | list[str]]


class Reply(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One entry of a state's `expect` list. Exactly one of the matchers is given."""

    goto: str
    keywords: list[str | int | float] | None = None
    regex: str | None = None
    otherwise: bool = False
    set: dict[str, str] | None = None


class Timeout(msgspec.Struct, forbid_unknown_fields=True):
    """Where to go when the other side has not replied for `after` (e.g. "20m")."""

    after: str | int | float
    goto: str


class State(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    say: Say | None = None
    expect: list[Reply] | None = None
    timeout: Timeout | None = None
    goto: str | None = None
    end: str | None = None
    set: dict[str, str] | None = None


class Scenario(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    version: int
    start: str
    states: dict[str, State]
    description: str = ""
