"""Compiled reply matchers and conditions: built once by the compiler, tried on every step.

A matcher's `match(text)` returns the variables it captured (an empty dict for a plain match) or
None. Everything costly (regexes, keyword sets, typo neighbourhoods) is prepared here, once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from .text import PHONE, URL, WORD, Text, deletions, distance, fold, fuzzy_allowance, squeeze
from .text import canonical as spell_out

_NONE: dict[str, str] = {}  # the result of a match without captures; never mutated


def format_number(value: float) -> str:
    """200.0 -> "200", 1.5 -> "1.5"."""
    return str(int(value)) if value == int(value) else f"{value:g}"


class Matcher:
    """Base class. `capture` names a variable that receives what matched."""

    __slots__ = ("capture",)
    kind = "matcher"

    def __init__(self, capture: str | None = None):
        self.capture = capture

    def match(self, text: Text) -> dict[str, str] | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _hit(self, text: Text) -> dict[str, str]:
        return {self.capture: text.raw} if self.capture else _NONE


class Always(Matcher):
    """`otherwise: true`."""

    __slots__ = ()
    kind = "otherwise"

    def match(self, text: Text) -> dict[str, str] | None:
        return self._hit(text)


class Words(Matcher):
    """`keywords`/`phrase`: any whole word, any phrase (words in a row), any symbol."""

    __slots__ = ("phrases", "symbols", "words")
    kind = "keywords"

    def __init__(self, keywords: list[str], capture: str | None = None):
        super().__init__(capture)
        words: set[str] = set()
        phrases: list[str] = []
        symbols: list[str] = []
        for keyword in keywords:
            folded = fold(keyword).strip()
            tokens = WORD.findall(folded)
            if not tokens:
                symbols.append(folded)  # "$", "💰": anywhere in the text
            elif len(tokens) == 1:
                words.add(tokens[0])
            else:
                phrases.append(f" {' '.join(tokens)} ")
        self.words = frozenset(words)
        self.phrases = tuple(phrases)
        self.symbols = tuple(symbols)

    def hits(self, text: Text) -> bool:
        if not self.words.isdisjoint(text.words):
            return True
        for symbol in self.symbols:
            if symbol in text.folded:
                return True
        if self.phrases:
            if text.repeats:
                return self._phrases_in(text.spellings)
            padded = text.padded[0]
            for phrase in self.phrases:
                if phrase in padded:
                    return True
        return False

    def _phrases_in(self, spellings: tuple[tuple[str, ...], ...]) -> bool:
        """Phrases against words some of which have several spellings ("sooo goood")."""
        count = len(spellings)
        for phrase in self.phrases:
            words = phrase.split()
            first = words[0]
            for start in range(count - len(words) + 1):
                if first in spellings[start] and all(
                        word in spellings[start + i] for i, word in enumerate(words)):
                    return True
        return False

    def match(self, text: Text) -> dict[str, str] | None:
        return self._hit(text) if self.hits(text) else None


class AllWords(Matcher):
    """`all`: every word or phrase is in the reply, in any order."""

    __slots__ = ("parts",)
    kind = "all"

    def __init__(self, keywords: list[str], capture: str | None = None):
        super().__init__(capture)
        self.parts = tuple(Words([k]) for k in keywords)

    def match(self, text: Text) -> dict[str, str] | None:
        for part in self.parts:
            if not part.hits(text):
                return None
        return self._hit(text)


class Regex(Matcher):
    """`regex`: searched in the NFKC text, case-insensitively; named groups are captured."""

    __slots__ = ("pattern",)
    kind = "regex"

    def __init__(self, pattern: re.Pattern[str], capture: str | None = None):
        super().__init__(capture)
        self.pattern = pattern

    def match(self, text: Text) -> dict[str, str] | None:
        found = self.pattern.search(text.nfkc)
        if found is None:
            return None
        captured = {k: v for k, v in found.groupdict().items() if v is not None}
        if self.capture:
            captured[self.capture] = found.group(0)
        return captured


class Number(Matcher):
    """`number`: the first amount in the reply within [low, high]."""

    __slots__ = ("high", "low")
    kind = "number"

    def __init__(self, low: float | None, high: float | None, capture: str | None = None):
        super().__init__(capture)
        self.low = low
        self.high = high

    def match(self, text: Text) -> dict[str, str] | None:
        if not text.words:
            return None
        for value in text.numbers:
            if (self.low is None or value >= self.low) and (self.high is None
                                                             or value <= self.high):
                return {self.capture: format_number(value)} if self.capture else _NONE
        return None


class Answer(Matcher):
    """`answer: yes` / `answer: no`."""

    __slots__ = ("value",)
    kind = "answer"

    def __init__(self, value: str, capture: str | None = None):
        super().__init__(capture)
        self.value = value

    def match(self, text: Text) -> dict[str, str] | None:
        return self._hit(text) if text.answer == self.value else None


class Has(Matcher):
    """`has: media | phone | url`; a capture receives the media URLs, the number or the link."""

    __slots__ = ("what",)
    kind = "has"

    def __init__(self, what: str, capture: str | None = None):
        super().__init__(capture)
        self.what = what

    def match(self, text: Text) -> dict[str, str] | None:
        if self.what == "media":
            if not text.media:
                return None
            return {self.capture: " ".join(text.media)} if self.capture else _NONE
        if not any(c.isdigit() for c in text.nfkc) and self.what == "phone":
            return None
        found = (PHONE if self.what == "phone" else URL).search(text.nfkc)
        if found is None:
            return None
        return {self.capture: found.group(0)} if self.capture else _NONE


class Fuzzy(Matcher):
    """`fuzzy`: words or phrases matched through text-speak ("u" -> "you") and typos (one per
    word of 5-7 letters, two from 8; none for shorter words or beyond `FUZZY_MAX_WORD`).

    Cost per reply word is bounded: a word is compared with the keywords only if its length is
    within some keyword's typo budget of that keyword's length (`lengths`), so no reply word
    longer than the longest keyword + 2 is ever split into deletions; and only if it has no more
    letters missing from such a keyword than the budget (each needs an edit of its own)."""

    __slots__ = ("allowance", "exact", "index", "keys", "lengths", "near", "phrases", "words_at")
    kind = "fuzzy"

    def __init__(self, keywords: list[str], capture: str | None = None):
        super().__init__(capture)
        phrases = []
        for keyword in keywords:
            words = tuple(spell_out(squeeze(w)[1] if squeeze(w) else w)
                          for w in WORD.findall(fold(keyword)))
            if words:
                phrases.append(words)
        self.phrases = tuple(phrases)
        self.exact = frozenset(w for phrase in phrases for w in phrase)
        self.allowance = {w: fuzzy_allowance(w) for w in self.exact}
        index: dict[str, set[str]] = {}
        for word, allowance in self.allowance.items():
            if allowance:
                for variant in deletions(word, allowance):
                    index.setdefault(variant, set()).add(word)
        self.index = index
        self.keys = frozenset(index)
        near: dict[int, list[tuple[frozenset[str], int]]] = {}
        for word, allowance in self.allowance.items():
            for size in range(len(word) - allowance, len(word) + allowance + 1):
                if allowance:
                    near.setdefault(size, []).append((frozenset(word), allowance))
        self.near = {size: tuple(keywords) for size, keywords in near.items()}
        """By reply word length: (letters, typo budget) of each keyword it could be a typo of."""
        self.lengths = frozenset(self.near)
        """Lengths a reply word may have and still be within a typo budget of a keyword."""
        self.words_at = self._remembered(self._find)
        """The keyword words that one word of the reply (its spellings) stands for."""

    @staticmethod
    def _remembered(find: Callable[[tuple[str, ...]], frozenset[str] | set[str]]
                    ) -> Callable[[tuple[str, ...]], frozenset[str] | set[str]]:
        """`find`, remembered for the last `_CACHE_SIZE` words of at most `_CACHE_KEY_CHARS`
        characters (replies reuse the same few thousand words; a longer one is looked up each
        time, so no key holds more than 3 * `_CACHE_KEY_CHARS` characters: its spellings are
        the word, shorter squeezes of it and short text-speak expansions)."""
        cached = lru_cache(maxsize=_CACHE_SIZE)(find)

        def words_at(spellings: tuple[str, ...]) -> frozenset[str] | set[str]:
            if len(spellings[0]) > _CACHE_KEY_CHARS:
                return find(spellings)
            return cached(spellings)

        words_at.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return words_at

    def _find(self, spellings: tuple[str, ...]) -> frozenset[str] | set[str]:
        found: set[str] | None = None
        for spelling in spellings:
            if spelling in self.exact:
                found = found or set()
                found.add(spelling)
            near = self.near.get(len(spelling))
            if near is not None and _may_be_near(spelling, near):
                variants = deletions(spelling, 2 if len(spelling) >= 6 else 1)
                if not self.keys.isdisjoint(variants):
                    candidates = set().union(*(self.index[variant] for variant
                                               in self.keys.intersection(variants)))
                    for word in candidates:
                        limit = self.allowance[word]
                        if distance(spelling, word, limit) <= limit:
                            found = found or set()
                            found.add(word)
        return found if found is not None else _NO_WORDS

    def match(self, text: Text) -> dict[str, str] | None:
        tokens = text.canonical
        if not tokens:
            return None
        words_at = self.words_at
        at = [words_at(spellings) for spellings in tokens]
        count = len(at)
        for phrase in self.phrases:
            if len(phrase) == 1:
                word = phrase[0]
                for words in at:
                    if word in words:
                        return self._hit(text)
                continue
            size = len(phrase)
            for start in range(count - size + 1):
                for offset, word in enumerate(phrase):
                    if word not in at[start + offset]:
                        break
                else:
                    return self._hit(text)
        return None


def _may_be_near(spelling: str, near: tuple[tuple[frozenset[str], int], ...]) -> bool:
    """Whether some keyword could be within its typo budget of `spelling`: every letter of the
    word that the keyword lacks takes an edit of its own (a lower bound of the distance)."""
    letters = set(spelling)
    return any(len(letters - keyword) <= allowance for keyword, allowance in near)


_NO_WORDS: frozenset[str] = frozenset()
_CACHE_SIZE = 16_384
"""Reply words each fuzzy matcher remembers (least recently used go first)."""
_CACHE_KEY_CHARS = 64
"""A reply word longer than this is looked up every time, never remembered."""


class AnyOf(Matcher):
    """A named intent: the first of its patterns that matches. A reply in another language
    than the scenario's default tries that language's patterns first, then the default's."""

    __slots__ = ("by_language", "name", "patterns")
    kind = "intent"

    def __init__(self, name: str, patterns: tuple[Matcher, ...] = (),
                 capture: str | None = None, *,
                 by_language: dict[str, tuple[Matcher, ...]] | None = None):
        super().__init__(capture)
        self.name = name
        self.patterns = patterns
        """The default language's patterns."""
        self.by_language = by_language or {}
        """The other languages' patterns."""

    def match(self, text: Text) -> dict[str, str] | None:
        patterns = self.patterns
        if text.language and self.by_language:
            own = self.by_language.get(text.language)
            if own:
                patterns = own + patterns
        for pattern in patterns:
            found = pattern.match(text)
            if found is not None:
                if self.capture:
                    return {**found, self.capture: text.raw}
                return found
        return None


# ---------------------------------------------------------------------------------------------
# Conditions


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


class Condition:
    """`{var: persona.age, lt: 18}`: every test given must hold (a missing number fails)."""

    __slots__ = ("equals", "exists", "ge", "gt", "in_", "le", "lt", "not_equals", "var")

    def __init__(self, var: str, *, equals: str | None = None, not_equals: str | None = None,
                 in_: tuple[str, ...] | None = None, exists: bool | None = None,
                 lt: float | None = None, le: float | None = None, gt: float | None = None,
                 ge: float | None = None):
        self.var = var
        self.equals = equals
        self.not_equals = not_equals
        self.in_ = in_
        self.exists = exists
        self.lt, self.le, self.gt, self.ge = lt, le, gt, ge

    @staticmethod
    def _same(value: str, expected: str) -> bool:
        a, b = _number(value), _number(expected)
        if a is not None and b is not None:
            return a == b
        return value.strip().casefold() == expected.strip().casefold()

    def holds(self, values: dict[str, str]) -> bool:
        value = values.get(self.var, "")
        if self.exists is not None and bool(value) != self.exists:
            return False
        if self.equals is not None and not self._same(value, self.equals):
            return False
        if self.not_equals is not None and self._same(value, self.not_equals):
            return False
        if self.in_ is not None and not any(self._same(value, v) for v in self.in_):
            return False
        if self.lt is None and self.le is None and self.gt is None and self.ge is None:
            return True
        number = _number(value)
        if number is None:
            return False
        return ((self.lt is None or number < self.lt) and (self.le is None or number <= self.le)
                and (self.gt is None or number > self.gt)
                and (self.ge is None or number >= self.ge))


def all_hold(conditions: tuple[Condition, ...], values: dict[str, str]) -> bool:
    for condition in conditions:  # noqa: SIM110 - a plain loop beats all() on the hot path
        if not condition.holds(values):
            return False
    return True
