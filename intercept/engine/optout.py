"""Opt-out keywords, recognised the same way everywhere (carrier practice: the first word).

STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE and OPTOUT opt a number out; START and
UNSTOP opt it back in; HELP and INFO ask for help. Any case, with trailing text ("stop pls",
"STOP!!", "Stop texting me"). The configuration adds words in other languages (`extra`), which
work the same way, accents or not ("BAJA", "cancelación").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Literal

from .text import strip_accents

OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke",
                     "optout"})
OPT_IN = frozenset({"start", "unstop"})
HELP = frozenset({"help", "info"})

_FIRST_WORD = re.compile(r"[^\W_]+")

Keyword = Literal["opt_out", "opt_in", "help"]


def fold_word(word: str) -> str:
    """A keyword as it is compared: NFKC, case-folded, without accents."""
    return strip_accents(unicodedata.normalize("NFKC", word).casefold().strip())


def keyword(text: str, extra: Mapping[str, Keyword] | None = None) -> Keyword | None:
    """Which family the first word of the message (or of any of its lines, for merged
    fragments) belongs to, if any. Opting out wins over the others. `extra` maps more words
    (folded with `fold_word`) to their family."""
    found: Keyword | None = None
    for line in text.splitlines() or [""]:
        kind = _line_keyword(line, extra)
        if kind == "opt_out":
            return kind
        found = found or kind
    return found


def _line_keyword(line: str, extra: Mapping[str, Keyword] | None) -> Keyword | None:
    folded = unicodedata.normalize("NFKC", line).casefold()
    match = _FIRST_WORD.search(folded.replace("opt-out", "optout").replace("opt out", "optout"))
    if match is None:
        return None
    word = match.group(0)
    if word in OPT_OUT:
        return "opt_out"
    if word in OPT_IN:
        return "opt_in"
    if word in HELP:
        return "help"
    if extra:
        return extra.get(word if word.isascii() else strip_accents(word))
    return None
