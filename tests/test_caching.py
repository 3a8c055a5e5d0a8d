"""Caches bounded in entries and key size (issue 13: `to_e164`'s cache grew with unbounded keys,
1,500 invalid 60 KB numbers: +82 MiB)."""

from __future__ import annotations

import pytest

from intercept.foundation.caching import short_key_cache
from intercept.foundation.phone import CACHED_NUMBER_CHARS, to_e164


def test_long_keys_are_computed_every_time_and_never_remembered():
    calls: list[str] = []

    @short_key_cache(maxsize=3, max_key_chars=5)
    def shout(word: str, times: int = 1) -> str:
        calls.append(word)
        return word.upper() * times

    assert shout("hey") == "HEY" and shout("hey") == "HEY"
    assert calls == ["hey"]
    assert shout("toolong") == "TOOLONG" and shout("toolong") == "TOOLONG"
    assert calls == ["hey", "toolong", "toolong"]
    assert shout.cache_info().currsize == 1
    assert shout("ab", 2) == "ABAB"
    for word in ["a", "b", "c", "d"]:
        shout(word)
    assert shout.cache_info().currsize == 3  # least recently used go first
    shout.cache_clear()
    assert shout.cache_info().currsize == 0
    assert shout.__name__ == "shout"


def test_a_cache_needs_room():
    with pytest.raises(ValueError, match="maxsize"):
        short_key_cache(maxsize=0, max_key_chars=10)


def test_to_e164_does_not_remember_huge_strings():
    to_e164.cache_clear()
    junk = [f"{i:05d}" + "9" * 60_000 for i in range(1500)]
    assert all(to_e164(raw) is None for raw in junk)
    assert to_e164.cache_info().currsize == 0  # was 1,500 keys of 60 KB: +82 MiB
    assert to_e164("(206) 555-0100") == "+12065550100"
    assert to_e164("020 7123 4567", "GB") == "+442071234567"
    assert to_e164.cache_info().currsize == 2
    padded = "+1 206 555 0100" + " " * CACHED_NUMBER_CHARS
    assert to_e164(padded) == "+12065550100"  # still parsed, only not remembered
    assert to_e164.cache_info().currsize == 2
