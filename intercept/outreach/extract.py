"""Phone numbers in ad text, including the ones written to dodge automated scrapers.

Pure functions, no I/O. `find_numbers` reads a text in four steps:

1. **Chunks.** The text is cut into alphanumeric chunks and single other characters.
   Whitespace and each character outside a chunk is a *separator* (dashes of every kind, dots,
   commas, stars, underscores, slashes, brackets, bullets, emoji, ...), *zero-width*
   (variation selectors, the keycap mark, joiners, skin tones) or a *break* (currency signs,
   quotes and primes, ``: ; ! ? # @ & %``, ...).
2. **Digit tokens.** An alphanumeric chunk is read as digits if it can be cut entirely into
   digits (any Unicode digit: full-width, Arabic-Indic, circled, superscript, keycap, ...),
   number words (``six``, ``SiX``, ``f1ve``, common misspellings, Spanish) and look-alike
   letters (``O o`` for 0, ``l I`` for 1; ``S`` for 5 only next to a digit).
   Otherwise its digit characters are still tokens but its words are breaks, so ``phone`` never
   yields the ``one`` inside it and ``call2065550123`` still yields the number.
3. **Runs and groups.** Tokens that touch form a *group*; groups joined by a short gap of
   separators form a *run*; anything else ends the run. ``2O6-5five5-0one23`` is one run of
   three groups.
4. **Windows.** Within a run, windows of whole groups with a plausible length are parsed with
   `phonenumbers` (cached by digit string) and kept only if valid. A window must not cut a
   group, must be at least half real digits or unambiguous number words, must not split a
   North American number in an odd place (``2024-12-25 10`` is a date, not a number), must not
   be three or more round groups (``250/350/4000`` is a price list) and must not follow an id
   keyword (``Post ID:``, ``Ad #``, ``ref``). A ``+`` before a run reads it internationally.

Prices (``$200``, ``150hh``), measurements (``34D-24-36``, ``5'6"``), dates, times, ages and
zip codes fail one of these tests: a break inside, too few digits, or an impossible shape.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

from ..foundation.caching import short_key_cache

__all__ = ["Found", "find_numbers"]


@dataclass(frozen=True, slots=True)
class Found:
    """One number found in a text.

    `e164` is the number in E.164 (``+12065550123``); `span` is ``(start, end)`` in the original
    text and `raw` is ``text[start:end]``, the number as the ad wrote it.
    """

    e164: str
    span: tuple[int, int]
    raw: str


# --- the vocabulary -------------------------------------------------------------------------

# Number words: (digit, strong). Weak words are ordinary English too ("too", "ate", "oh"), so
# they count as digits but not towards the share of real digits a window needs.
_BASE_WORDS: dict[str, tuple[str, bool]] = {
    "zero": ("0", True), "zeero": ("0", True), "ziro": ("0", True),
    "xero": ("0", True), "oh": ("0", False), "cero": ("0", True),
    "one": ("1", True), "wun": ("1", False), "won": ("1", False), "uno": ("1", True),
    "two": ("2", True), "too": ("2", False), "dos": ("2", True),
    "three": ("3", True), "thre": ("3", True), "threee": ("3", True), "thri": ("3", True),
    "tree": ("3", False), "tres": ("3", True),
    "four": ("4", True), "fuor": ("4", True), "foor": ("4", True), "fore": ("4", False),
    "cuatro": ("4", True),
    "five": ("5", True), "fiv": ("5", True), "fyve": ("5", True), "fife": ("5", False),
    "cinco": ("5", True),
    "six": ("6", True), "sixx": ("6", True), "siks": ("6", True), "sicks": ("6", False),
    "seis": ("6", True),
    "seven": ("7", True), "sevn": ("7", True), "sevin": ("7", True), "sevan": ("7", True),
    "sevem": ("7", True), "siete": ("7", True),
    "eight": ("8", True), "eigth": ("8", True), "eigt": ("8", True), "eght": ("8", True),
    "eihgt": ("8", True), "ate": ("8", False), "ocho": ("8", True),
    "nine": ("9", True), "nien": ("9", True), "nyne": ("9", True), "niner": ("9", True),
    "nein": ("9", False), "nueve": ("9", True),
}
# Leetspeak inside the English number words (not their misspellings, or "thr33" would read as
# "thre" 3): "f1ve", "z3r0", "tw0", "0ne".
_LEET = {"o": "o0", "i": "i1", "l": "l1", "e": "e3"}
_ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _variants(word: str) -> list[str]:
    if word not in _ENGLISH:
        return [word]
    return ["".join(p) for p in itertools.product(*(_LEET.get(c, c) for c in word))]


_WORDS: dict[str, tuple[str, bool]] = {
    variant: value for word, value in _BASE_WORDS.items() for variant in _variants(word)
}
_WORD_LENGTHS = sorted({len(w) for w in _WORDS}, reverse=True)

# Letters that stand for digits, by look. Case matters: "I" is 1, "i" is not.
_LOOKALIKES = {
    **dict.fromkeys("OoØøОоΟοＯｏ", "0"),  # Latin, Cyrillic, Greek and full-width O
    **dict.fromkeys("lIІӀｌＩ", "1"),
}
# Only next to a digit inside one chunk ("5S5"): alone it is just a letter. B for 8 is refused:
# it reads bra sizes ("32B-24-34") as digits.
_ADJACENT_LOOKALIKES = {"S": "5"}

_ZERO_WIDTH_CATEGORIES = {"Mn", "Me", "Cf"}
_BREAK_CATEGORIES = {"Sc", "Pi", "Pf", "Cc", "Cs", "Co", "Cn"}
_BREAK_CHARS = set("'\"`´:;!?#@&%^<>\u2032\u2033\u2034")

_OPENING = {"(": ")", "[": "]", "{": "}", "（": "）", "［": "］"}

_CLOSING = {close: open_ for open_, close in _OPENING.items()}

_SEPARATOR, _ZERO_WIDTH, _BREAK, _PLUS = 0, 1, 2, 3
_MAX_GAP = 5  # separators between two groups of one run (a whitespace run counts once)

_CHUNK = re.compile(r"[^\W_]+|\S")  # whitespace is what lies between two chunks

# "Post ID: 7034567890", "ad #7034567890", "ref 7034567890", "#7034567890": an id, not a
# number. "ad" and "post" alone are not enough ("see my ad 206 555 0123").
_ID_BEFORE = re.compile(
    r"(?:(?<![^\W\d_])(?:"
    r"(?:id|ids|ref|reference|listing|order|item|code|pin|ticket|invoice|acct|account|case)"
    r"\s*(?:#|no\.?|nr\.?|num(?:ber)?\.?)?"
    r"|(?:ad|ads|post|posting)\s*(?:#|no\.?|nr\.?|num(?:ber)?\.?|id)"
    r")\s*[:#=.\-/]*\s*|#)$",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def _char_class(ch: str) -> int:
    """Class of a character outside alphanumeric chunks."""
    if ch == "+" or ch == "\uff0b":
        return _PLUS
    if ch in _BREAK_CHARS:
        return _BREAK
    category = unicodedata.category(ch)
    if category in _ZERO_WIDTH_CATEGORIES or "\U0001f3fb" <= ch <= "\U0001f3ff":
        return _ZERO_WIDTH
    if category in _BREAK_CATEGORIES:
        return _BREAK
    return _SEPARATOR


# --- reading one alphanumeric chunk ---------------------------------------------------------

# A piece of a chunk: (start offset, end offset, digit or None for a break, strong, real digit).
_Piece = tuple[int, int, str | None, bool, bool]


def _digit_of(ch: str) -> str | None:
    value = unicodedata.digit(ch, None)
    return None if value is None else str(value)


def _segment(chunk: str, lower: str, digits: list[str | None]) -> list[_Piece] | None:
    """Cut `chunk` entirely into digits, number words and look-alikes, or None.

    The cut with the fewest pieces wins, but a digit character read as a letter of a word
    costs two more: "three3" is 3 3 (not a misspelt "threee"), "f1ve" is still 5.
    """
    n = len(chunk)
    best: list[tuple[int, _Piece | None] | None] = [None] * (n + 1)
    best[n] = (0, None)
    for k in range(n - 1, -1, -1):
        options: list[tuple[int, int, _Piece]] = []  # (length, cost, piece)
        if digits[k] is not None:
            options.append((1, 1, (k, k + 1, digits[k], True, True)))
        else:
            ch = chunk[k]
            if ch in _LOOKALIKES:
                options.append((1, 1, (k, k + 1, _LOOKALIKES[ch], False, False)))
            elif ch in _ADJACENT_LOOKALIKES and (
                (k > 0 and digits[k - 1] is not None) or (k + 1 < n and digits[k + 1] is not None)
            ):
                options.append((1, 1, (k, k + 1, _ADJACENT_LOOKALIKES[ch], False, False)))
        for length in _WORD_LENGTHS:
            if k + length <= n:
                word = _WORDS.get(lower[k:k + length])
                if word is not None:
                    cost = 1 + 2 * sum(d is not None for d in digits[k:k + length])
                    options.append((length, cost, (k, k + length, word[0], word[1], False)))
        found: tuple[int, _Piece] | None = None
        for length, cost, piece in options:
            rest = best[k + length]
            if rest is not None and (found is None or rest[0] + cost < found[0]):
                found = (rest[0] + cost, piece)
        best[k] = found
    if best[0] is None:
        return None
    pieces = []
    k = 0
    while k < n:
        entry = best[k]
        assert entry is not None and entry[1] is not None
        pieces.append(entry[1])
        k = entry[1][1]
    return pieces


_WORD: tuple[_Piece, ...] = ((0, 0, None, False, False),)  # a plain word: a break


@short_key_cache(maxsize=65536, max_key_chars=64)
def _read_chunk(chunk: str) -> tuple[_Piece, ...]:
    """The digit pieces and breaks of one alphanumeric chunk, in order (remembered for chunks
    of up to 64 characters: 100 ads with a 20,000-digit run kept 289 MiB)."""
    if chunk.isascii():
        if chunk.isdigit():
            return tuple((k, k + 1, c, True, True) for k, c in enumerate(chunk))
        if chunk.isalpha() and not _could_be_digits(chunk):
            return _WORD
    digits = [_digit_of(c) for c in chunk]
    lower = chunk.lower()
    if len(lower) != len(chunk):
        lower = chunk
    whole = _segment(chunk, lower, digits)
    if whole is not None:
        return tuple(whole)
    # Not all digits: keep its digit characters, and each run of letters that reads as digits
    # on its own ("Text2O6" -> break, 2, O, 6); every other run of letters is a break.
    pieces: list[_Piece] = []
    k = 0
    n = len(chunk)
    while k < n:
        if digits[k] is not None:
            pieces.append((k, k + 1, digits[k], True, True))
            k += 1
            continue
        end = k
        while end < n and digits[end] is None:
            end += 1
        letters = _segment(chunk[k:end], lower[k:end], [None] * (end - k))
        if letters is None:
            pieces.append((k, end, None, False, False))
        else:
            pieces.extend((a + k, b + k, d, s, r) for a, b, d, s, r in letters)
        k = end
    return tuple(pieces)


# Letters that occur in some number word or look-alike: an ASCII word with any other letter
# cannot be read as digits, which settles most words of an ad without segmenting them.
_DIGIT_LETTERS = frozenset("".join(_WORDS) + "".join(_LOOKALIKES) + "".join(_ADJACENT_LOOKALIKES))
_DIGIT_LETTERS_LOWER = frozenset(c.lower() for c in _DIGIT_LETTERS)


def _could_be_digits(word: str) -> bool:
    return all(c in _DIGIT_LETTERS_LOWER for c in word.lower())


# --- numbers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    country_code: int
    national_lengths: frozenset[int]


@functools.lru_cache(maxsize=256)
def _region(code: str) -> _Region:
    region = code.upper()
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise ValueError(f"Unknown region {code!r}: use a two-letter country code such as US "
                         "or GB.")
    lengths = {n for n in metadata.general_desc.possible_length if n > 0}
    prefix = len(metadata.national_prefix or "")
    country = len(str(metadata.country_code))
    allowed = lengths | {n + prefix for n in lengths} | {n + country for n in lengths}
    return _Region(region, metadata.country_code, frozenset(allowed))


@functools.lru_cache(maxsize=65536)
def _parse(digits: str, region: str, international: bool) -> str | None:
    """E.164 of a digit string if it is a valid number, else None (cached by digit string)."""
    try:
        number = phonenumbers.parse("+" + digits if international else digits, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    if not international and number.country_code != _region(region).country_code:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class _Run:
    """A run of digit groups: token positions, digits and per-group offsets."""

    __slots__ = ("digits", "ends", "group_ends", "plus", "real", "starts", "strong", "words")

    def __init__(self, plus: bool) -> None:
        self.plus = plus
        self.digits: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.strong: list[bool] = []
        self.real: list[bool] = []
        self.words: list[bool] = []  # the token is a word or look-alike (not a digit)
        self.group_ends: list[int] = []  # token index after each group


def _tokens(text: str) -> list[_Run]:
    """Cut `text` into runs of digit groups (steps 1 to 3 of the module docstring)."""
    runs: list[_Run] = []
    run: _Run | None = None
    gap = 0  # separators since the last token
    broken = True  # a break since the last token
    plus = False  # a "+" (and at most whitespace) right before the next token
    last_end = -1  # end of the last token, to tell touching tokens apart

    def close() -> None:
        nonlocal run
        if run is not None:
            run.group_ends.append(len(run.digits))
            runs.append(run)
            run = None

    previous_end = 0
    for match in _CHUNK.finditer(text):
        chunk = match.group()
        start = match.start()
        if start != previous_end:
            gap += 1  # whitespace, however long, counts as one separator
        previous_end = match.end()
        first = chunk[0]
        if len(chunk) == 1 and not first.isalnum():
            kind = _char_class(first)
            if kind == _ZERO_WIDTH:
                if start == last_end:
                    last_end = previous_end  # keycap marks belong to the digit before them
                    if run is not None:
                        run.ends[-1] = last_end
                continue
            plus = kind == _PLUS
            if kind == _SEPARATOR:
                gap += 1
            else:
                broken = True
            continue
        pieces = _read_chunk(chunk)
        if pieces is _WORD:
            broken = True
            plus = False
            continue
        for a, b, digit, strong, real in pieces:
            if digit is None:
                broken = True
                plus = False
                continue
            a += start
            b += start
            if run is not None and a == last_end:
                pass  # touches the previous token: same group
            elif run is not None and not broken and gap <= _MAX_GAP:
                run.group_ends.append(len(run.digits))
            else:
                close()
                run = _Run(plus)
            run.digits.append(digit)
            run.starts.append(a)
            run.ends.append(b)
            run.strong.append(strong)
            run.real.append(real)
            run.words.append(not real)
            last_end = b
            gap = 0
            broken = plus = False
        plus = False
    close()
    return runs


def _nanp_shape_ok(sizes: list[int], length: int) -> bool:
    """Whether groups of these sizes split a North American number the way people do.

    The number's parts are the optional leading 1, the area code (3), the exchange (3) and the
    line (4). A group either covers whole parts ("206555" "0123", "12065550123") or lies inside
    one part; a part made of several groups is made of single digits ("2 0 6", "two oh six").
    "2024-12-25 10", "31 28 34 30 26" or "2/10 250 38 25" are not numbers.
    """
    offset = length - 10
    bounds = (0, offset, offset + 3, offset + 6, length)
    inside: dict[int, list[int]] = {}  # part index -> sizes of the groups inside it
    start = 0
    for size in sizes:
        end = start + size
        part = next(k for k in range(4) if bounds[k] <= start < bounds[k + 1])
        if end > bounds[part + 1]:  # crosses into the next part: must cover whole parts
            if start != bounds[part] or end not in bounds:
                return False
        else:
            inside.setdefault(part, []).append(size)
        start = end
    return all(len(group_sizes) == 1 or all(size == 1 for size in group_sizes)
               for group_sizes in inside.values())


def _price_list(sizes: list[int], digits: str) -> bool:
    """Three or more round groups ("250/350/4000"): a price list, not a number."""
    if len(sizes) < 3 or min(sizes) < 2:
        return False
    end = 0
    for size in sizes:
        end += size
        if digits[end - 1] != "0":
            return False
    return True


def _windows(run: _Run, region: _Region, text: str) -> list[Found]:
    """The numbers in one run: greedy, left to right, one window of whole groups at a time."""
    found: list[Found] = []
    bounds = [0, *run.group_ends]
    groups = len(bounds) - 1
    all_digits = "".join(run.digits)
    strong_before = [0, *itertools.accumulate(run.strong)]
    max_length = 15 if run.plus else max(region.national_lengths)

    def best_from(i: int) -> tuple[int, str] | None:
        international = run.plus and i == 0
        best: tuple[int, str] | None = None
        for j in range(i, groups):
            length = bounds[j + 1] - bounds[i]
            if length > max_length:
                break
            if international:
                if length < 7:
                    continue
            elif length not in region.national_lengths:
                continue
            if (strong_before[bounds[j + 1]] - strong_before[bounds[i]]) * 2 < length:
                continue
            digits = all_digits[bounds[i]:bounds[j + 1]]
            e164 = _parse(digits, region.code, international)
            if e164 is None:
                continue
            sizes = [bounds[g + 1] - bounds[g] for g in range(i, j + 1)]
            if _price_list(sizes, digits):
                continue
            if e164.startswith("+1"):
                if international and sizes[0] > 1:  # "+1" glued to the number: "+1２0６…"
                    sizes = [1, sizes[0] - 1, *sizes[1:]]
                if not _nanp_shape_ok(sizes, length):
                    continue
            best = (j, e164)
        return best

    i = 0
    while i < groups:
        result = best_from(i)
        if result is None:
            i += 1
            continue
        j, e164 = result
        first = bounds[i]
        # "one 206 555 0123", "I 2065550123": a word or letter read as the leading 1 is more
        # likely a word; keep the number as written in digits when it is the same number.
        if (j > i and bounds[i + 1] - first == 1 and run.words[first]
                and any(run.real[bounds[i + 1]:bounds[i + 2]])):
            alternative = best_from(i + 1)
            if alternative is not None and alternative[1] == e164:
                i += 1
                j = alternative[0]
                first = bounds[i]
        start = run.starts[first]
        end = run.ends[bounds[j + 1] - 1]
        if not (i == 0 and run.plus) and _ID_BEFORE.search(text, max(0, start - 30), start):
            i = j + 1
            continue
        if run.plus and i == 0:
            plus_at = max(text.rfind("+", max(0, start - 2), start),
                          text.rfind("\uff0b", max(0, start - 2), start))
            start = plus_at if plus_at >= 0 else start
        elif start > 0 and text[start - 1] in _OPENING and _OPENING[text[start - 1]] in text[
                start:end]:
            start -= 1  # "(206) 555-0123" keeps its bracket
        if end < len(text) and text[end] in _CLOSING:
            opener = _CLOSING[text[end]]
            if text.count(opener, start, end) > text.count(text[end], start, end):
                end += 1  # "[206] [555] [0149]" too
        found.append(Found(e164, (start, end), text[start:end]))
        i = j + 1
    return found


def find_numbers(text: str, *, region: str = "US") -> list[Found]:
    """Every valid phone number in `text`, in order, however the ad obfuscates it.

    National numbers are read in `region` (a two-letter country code, default US); a ``+``
    before a number reads it internationally. Raises ValueError for an unknown region.
    """
    info = _region(region)
    minimum = min(info.national_lengths | {7})
    found: list[Found] = []
    for run in _tokens(text):
        if len(run.digits) >= minimum:
            found.extend(_windows(run, info, text))
    return found
