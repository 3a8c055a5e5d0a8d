"""Text from outside, made safe to print to a terminal.

A buyer's message, a caller name from a lookup or a scenario's text can carry escape sequences:
``ESC [2J`` clears the screen, ``ESC ]52;c;...`` writes the clipboard, ``U+202E`` reverses what
follows, ``U+009B`` is a one-byte CSI for some terminals. Everything the CLI prints that it did
not write itself goes through `printable` (or `printable_json` for ``--json`` output), which
shows such characters as visible escapes (``\\x1b``, ``\\u202e``) and keeps newlines and tabs.
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 (but tab and newline), DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional marks, embeddings, isolates
    "\ud800-\udfff]")  # lone surrogates (undecodable bytes): a terminal cannot encode them
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                             "\ud800-\udfff]")  # json.dumps escapes C0 itself


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str) -> str:
    """`text` with control characters, bidi overrides and lone surrogates shown as escapes."""
    return _UNSAFE.sub(_escape, text)


def printable_json(value: Any, **options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)`` with the same characters as JSON escapes: the
    same data for a JSON reader, harmless for a terminal."""
    return _UNSAFE_IN_JSON.sub(_json_escape, json.dumps(value, ensure_ascii=False, **options))
