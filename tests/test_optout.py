"""The opt-out keywords, as carriers read them: the first word, any case, trailing text."""

from __future__ import annotations

import pytest

from intercept.engine.optout import keyword


@pytest.mark.parametrize("text", [
    "STOP", "stop", "sToP", "stop pls", "Stop texting me", "STOP!!", "  stop", "😡 stop",
    "STOPALL", "unsubscribe", "Cancel", "END", "quit.", "revoke", "OPTOUT", "opt-out",
    "Opt out please", "hi\nstop", "ＳＴＯＰ",
])
def test_opt_out_words(text):
    assert keyword(text) == "opt_out"


@pytest.mark.parametrize("text", [
    "stopper", "nonstop", "don't stop", "can we meet at the end", "bus stop at 5", "",
    "ok", "the end",
])
def test_not_opt_out(text):
    assert keyword(text) is None


def test_opt_in_and_help():
    assert keyword("START") == "opt_in" and keyword("unstop pls") == "opt_in"
    assert keyword("HELP") == "help" and keyword("Info?") == "help"
    assert keyword("start\nstop") == "opt_out"  # opting out wins
