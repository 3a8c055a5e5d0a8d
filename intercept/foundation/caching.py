"""Memoisation bounded in entries and in key size, for functions fed by what strangers send.

`short_key_cache(maxsize, max_key_chars)` is `functools.lru_cache(maxsize)` for a function of
positional arguments whose first is a string, except that a call whose string is longer than
`max_key_chars` characters is computed and not remembered: at most `maxsize` entries, none with
a key longer than `max_key_chars`, however long the texts it sees.

Why `functools.lru_cache` and not `cachetools`: it is in the standard library, written in C
(~0.1 µs a hit, on hot paths) and thread-safe; `cachetools` bounds the number of entries or
the total size of the values, not the size of a key, so it would need this same guard.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


def short_key_cache(maxsize: int, max_key_chars: int
                    ) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorate a function of positional arguments whose first is a string. The wrapper has
    `cache_info()` and `cache_clear()` like `functools.lru_cache`'s.
    """
    if maxsize < 1 or max_key_chars < 0:
        raise ValueError("short_key_cache needs maxsize >= 1 and max_key_chars >= 0")

    def decorate(function: Callable[..., R]) -> Callable[..., R]:
        cached = functools.lru_cache(maxsize=maxsize)(function)

        @functools.wraps(function)
        def call(key: str, *args: Any) -> R:
            if len(key) > max_key_chars:
                return function(key, *args)
            return cached(key, *args)

        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return call

    return decorate
