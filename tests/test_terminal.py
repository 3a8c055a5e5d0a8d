"""`printable`: what the CLI prints of others' text cannot drive the terminal."""

from __future__ import annotations

import json

import pytest

from intercept.foundation.terminal import printable, printable_json


@pytest.mark.parametrize(("raw", "shown"), [
    ("clear \x1b[2J\x1b[H", "clear \\x1b[2J\\x1b[H"),
    ("clip \x1b]52;c;cm0gLXJmIH4=\x07", "clip \\x1b]52;c;cm0gLXJmIH4=\\x07"),
    ("c1 csi \x9b31m and nel \x85", "c1 csi \\x9b31m and nel \\x85"),
    ("bidi \u202egpj.exe \u2066x\u2069 \u200f", "bidi \\u202egpj.exe \\u2066x\\u2069 \\u200f"),
    ("back\rspace\b del\x7f nul\x00", "back\\x0dspace\\x08 del\\x7f nul\\x00"),
    ("undecodable \udcff", "undecodable \\udcff"),
    ("two\nlines\tand a tab, émoji 💬, עברית", "two\nlines\tand a tab, émoji 💬, עברית"),
])
def test_control_characters_are_shown_not_obeyed(raw, shown):
    assert printable(raw) == shown
    shown.encode("utf-8")  # always printable, even from undecodable input


def test_json_output_is_the_same_data_and_harmless():
    value = {"text": "a\x1b[2J b\x9b c\u202e d\udcff e\n"}
    text = printable_json(value, indent=2)
    assert all(c not in text for c in ("\x1b", "\x9b", "\u202e", "\udcff"))
    assert json.loads(text) == value
