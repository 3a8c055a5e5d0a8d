"""Memory bounded against what strangers send: a mapping of at most N entries, and memoisation
bounded in entries and in key size.

`BoundedDict(maxsize)` is a dict that forgets its oldest entry (the least recently set or
touched) when a new one would take it past `maxsize`: for what a server remembers per client,
per message or per conversation, where an unbounded dict would grow with the traffic.

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
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")
K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(OrderedDict[K, V]):
    """A dict of at most `maxsize` entries: setting a key makes it the newest, and past
    `maxsize` the oldest entries are dropped; `touch` makes a key the newest without setting it
    (least-recently-used order). Reading does not reorder."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"a BoundedDict needs maxsize >= 1, got {maxsize}")
        super().__init__()
        self.maxsize = maxsize

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)

    def touch(self, key: K) -> None:
        """Make `key` (which must be present) the newest entry."""
        self.move_to_end(key)

    def __reduce__(self) -> Any:
        return (_bounded, (self.maxsize, list(self.items())))


def _bounded(maxsize: int, items: list[tuple[Any, Any]]) -> BoundedDict[Any, Any]:
    bounded: BoundedDict[Any, Any] = BoundedDict(maxsize)
    for key, value in items:
        bounded[key] = value
    return bounded


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
