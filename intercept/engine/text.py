"""Reading a reply: normalised once per step, with the costlier views computed on first use.

`Text(raw, limit=n)` holds the views the matchers use, made from the first `n` characters of
the reply (`READ_LIMIT` by default; `raw` keeps the whole text):

- `nfkc`: Unicode-compatibility folded, case kept (regexes run on it, with IGNORECASE, so their
  captures keep the sender's case);
- `folded`: `nfkc` case-folded, apostrophes inside words dropped ("don't" -> "dont");
- `words`: the words of `folded`, plus each word with runs of 3+ repeated letters squeezed to two
  and to one ("heyyyy" -> "heyy", "hey"), plus words for a few emoji ("👍" -> "ok");
- lazily: `padded` (words joined for phrase search), `numbers`, `answer` (yes/no), `canonical`
  (words with text-speak spelled out, for fuzzy matching), `phones`, `urls`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import NamedTuple

READ_LIMIT = 1600
"""Characters of a reply the matchers read unless the scenario was compiled with another limit
(config `runtime.read_limit`): a full-length SMS (ten concatenated parts of 160)."""
FUZZY_MAX_WORD = 40
"""The longest keyword word that tolerates typos; longer ones are matched exactly, so fuzzy work
per reply word stays bounded (a word is compared only if its length is within a keyword's
typo budget of that keyword's length)."""

WORD = re.compile(r"\w+")
_APOSTROPHE = re.compile(r"(?<=\w)['’`´](?=\w)")
_REPEAT = re.compile(r"([^\W\d_])\1{2,}")  # a letter three times or more

EMOJI_WORDS: dict[str, str] = {
    "👍": "ok", "👌": "ok", "✅": "ok", "✔": "ok", "🆗": "ok", "🙆": "ok",
    "👎": "no", "❌": "no", "🚫": "no", "🙅": "no",
    "💵": "money", "💰": "money", "💲": "money", "🤑": "money",
    "📷": "photo", "📸": "photo", "🤳": "selfie",
    "🚓": "police", "👮": "police", "🚔": "police",
}
"""Emoji that also count as a word when matching (the emoji itself stays in the text)."""

TEXTSPEAK: dict[str, str] = {
    "u": "you", "ya": "you", "yu": "you", "yuo": "you", "ur": "your", "yr": "your",
    "urs": "yours", "r": "are", "b": "be", "c": "see", "y": "why", "n": "and", "nd": "and",
    "k": "ok", "kk": "ok", "okay": "ok", "okey": "ok", "oki": "ok", "okk": "ok",
    "pls": "please", "plz": "please", "plez": "please", "thx": "thanks", "ty": "thanks",
    "tnx": "thanks", "hw": "how", "hows": "how", "wat": "what", "wut": "what", "wht": "what",
    "wen": "when", "whn": "when", "wer": "where", "wher": "where", "whr": "where",
    "pic": "pics", "pix": "pics", "picz": "pics", "pict": "pics", "pictures": "pics",
    "picture": "pics", "foto": "photo", "fotos": "photos", "tonite": "tonight",
    "tonit": "tonight", "2nite": "tonight", "2night": "tonight", "tnite": "tonight",
    "tn": "tonight", "tmrw": "tomorrow", "tmr": "tomorrow", "tmrow": "tomorrow",
    "tomoro": "tomorrow", "2morrow": "tomorrow", "2day": "today", "tdy": "today",
    "nite": "night", "l8r": "later", "l8": "late", "gr8": "great", "b4": "before",
    "hr": "hour", "hrs": "hours", "hour": "hour", "min": "minute", "mins": "minutes",
    "avail": "available", "avl": "available", "bc": "because", "cuz": "because",
    "coz": "because", "cos": "because", "srsly": "seriously", "rly": "really",
    "realy": "really", "luv": "love", "cn": "can", "wanna": "want", "wana": "want",
    "gonna": "going", "gotta": "got", "addy": "address", "addr": "address", "num": "number",
}
"""Text-speak spelled out, for `fuzzy` matching (applied to both the reply and the keyword)."""

YES_WORDS = frozenset({
    "yes", "yeah", "yea", "yeh", "yah", "ya", "yep", "yup", "ye", "yess", "y", "sure", "ok",
    "okay", "k", "kk", "alright", "aight", "absolutely", "definitely", "certainly", "please",
    "pls", "plz", "interested", "correct", "right",
})
NO_WORDS = frozenset({
    "no", "nope", "nah", "na", "n", "nay", "not", "never", "dont", "cant", "wont", "nothing",
})
YES_PHRASES = (" no problem ", " why not ", " not a problem ", " of course ", " for sure ",
               " sounds good ", " i do ", " i am ", " i would ")
NO_PHRASES = (" no thanks ", " no thank you ", " not interested ", " leave me alone ")
UNSURE_PHRASES = (" dont know ", " not sure ", " idk ", " no idea ", " dunno ")


class Answers(NamedTuple):
    """The words and phrases of a yes and a no in one language (phrases padded with spaces,
    folded: no accents, no apostrophes)."""

    yes: frozenset[str]
    no: frozenset[str]
    yes_phrases: tuple[str, ...]
    no_phrases: tuple[str, ...]
    unsure_phrases: tuple[str, ...]


ANSWERS = {
    "en": Answers(YES_WORDS, NO_WORDS, YES_PHRASES, NO_PHRASES, UNSURE_PHRASES),
    # Spanish as texted in the US, with the English a Spanish speaker mixes in ("ok", "yes").
    "es": Answers(
        frozenset({"si", "sii", "siii", "sip", "simon", "claro", "dale", "va", "vale", "sale",
                   "orale", "seguro", "porfa", "aja", "obvio", "ok", "okay", "oki", "k", "yes",
                   "sure", "bueno", "andale", "exacto", "correcto"}),
        frozenset({"no", "nel", "nop", "nopo", "nada", "nunca", "tampoco", "nah", "nope"}),
        (" claro que si ", " por supuesto ", " me interesa ", " esta bien ", " si quiero ",
         " como no ", " por que no ", " porque no "),
        (" no gracias ", " no me interesa ", " dejame en paz ", " no quiero ", " para nada ",
         " ni loca ", " ni loco "),
        (" no se ", " no entiendo ", " quien eres ", " quien es ", " tal vez ", " quizas ",
         " a lo mejor ", " no estoy segura ", " no estoy seguro ", " ni idea ")),
}
"""Yes and no by language: a conversation in Spanish reads "si", "nel", "no gracias"."""

_NUMBER_WORDS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_SCALES = {"hundred": 100, "hunnid": 100, "hundo": 100, "thousand": 1000, "grand": 1000,
           "k": 1000}

PHONE = re.compile(
    r"(?<![\w+])(?:\+?1[\s.\-]?)?\(?[2-9]\d{2}\)?[\s.\-]?\d{3}[\s.\-]?\d{4}(?!\w)"
    r"|(?<![\w+])\+\d(?:[\s.\-]?\d){7,14}(?!\w)")
URL = re.compile(
    r"\bhttps?://\S+|\bwww\.\S+"
    r"|\b[a-z0-9][a-z0-9\-]{0,62}(?:\.[a-z0-9\-]{1,63}){0,9}\.(?:com|net|org|info|io|co|us|me"
    r"|ly|app|link|site|xyz|biz|tv|gl|gg)\b(?:/\S*)?", re.IGNORECASE)
"""A link. A bare domain has labels of at most 63 characters and at most 11 of them, as in DNS:
unbounded, every word start of "a.a.a.…" scanned to the end of the text (quadratic)."""
_DIGITS = re.compile(
    r"(?<![\w.,:])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?:\s*(k|grand|hundred|hunnid|thousand)\b)?"
    r"(?![\d:]|\s*(?:am|pm|a\.m|p\.m|a|p)\b|[.,]\d)")


def fold(text: str) -> str:
    """How keywords and replies are compared: NFKC, case-folded, accents and apostrophes in
    words dropped ("Cuánto" and "cuanto" are the same word, as texters write them)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    if not folded.isascii():
        folded = strip_accents(folded)
    return _APOSTROPHE.sub("", folded)


def strip_accents(text: str) -> str:
    """`text` without combining marks (á -> a, ñ -> n); other characters are kept."""
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", kept)


def squeeze(word: str) -> tuple[str, ...]:
    """A word's spellings with runs of 3+ repeated letters squeezed to two and to one."""
    if _REPEAT.search(word) is None:
        return ()
    return (_REPEAT.sub(r"\1\1", word), _REPEAT.sub(r"\1", word))


def canonical(word: str) -> str:
    """A word with text-speak spelled out ("u" -> "you")."""
    return TEXTSPEAK.get(word, word)


def fuzzy_allowance(word: str) -> int:
    """How many typos a fuzzy keyword word tolerates: none up to 4 letters, 1 up to 7, then 2
    (none beyond `FUZZY_MAX_WORD` letters)."""
    n = len(word)
    return 0 if n <= 4 or n > FUZZY_MAX_WORD else 1 if n <= 7 else 2


def deletions(word: str, depth: int) -> frozenset[str]:
    """`word` and every string made from it by deleting up to `depth` characters.

    About len(word) ** depth / depth! strings of len(word) characters each: callers pass only
    words no longer than `FUZZY_MAX_WORD` + 2. Not cached (the fuzzy matcher caches what a
    reply word stands for, which is small)."""
    found = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1:] for w in frontier for i in range(len(w))}
        found |= frontier
    return frozenset(found)


def distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment edit distance (a swap counts once), or `limit + 1` if larger."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        best = i
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current.append(value)
            best = min(best, value)
        if best > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1] if previous[-1] <= limit else limit + 1


def parse_numbers(folded: str) -> list[float]:
    """Amounts written in a reply: "$200", "1,500", "2 hundred", "1.5k", "two hundred fifty",
    "one fifty" (150). Clock times ("8pm", "8:30") and phone numbers are not amounts."""
    text = PHONE.sub(" ", folded) if any(c.isdigit() for c in folded) else folded
    found: list[tuple[int, float]] = []
    for match in _DIGITS.finditer(text):
        whole, frac, scale = match.groups()
        value = float(whole.replace(",", "") + (f".{frac}" if frac else ""))
        if scale:
            value *= _SCALES[scale]
        if math.isfinite(value):  # 400 digits read as infinity: not an amount
            found.append((match.start(), value))
    total: float | None = None
    current = 0.0
    previous_unit = False  # the last word was 1..9 (so "one fifty" reads as 150)
    start = 0
    previous_word = ""
    for match in WORD.finditer(text):
        word, before = match.group(), previous_word
        previous_word = word
        if word in _SCALES and before.isdigit():
            continue  # "2 hundred": read with the digits above
        if word in _NUMBER_WORDS:
            value = _NUMBER_WORDS[word]
            if total is None:
                total, current, start = 0.0, 0.0, match.start()
            if previous_unit and value >= 20 and value % 10 == 0 and current < 10:
                current = current * 100 + value
            else:
                current += value
            previous_unit = 1 <= value <= 9
        elif word in _SCALES and word != "k" and (total is not None or word in ("hundred",)):
            if total is None:  # "a hundred", "hundred"
                total, current, start = 0.0, 1.0, match.start()
            current = (current or 1) * _SCALES[word]
            if _SCALES[word] >= 1000:
                total += current
                current = 0.0
            previous_unit = False
        elif (word == "and" and total is not None) or (word == "a" and total is None):
            continue
        else:
            if total is not None:
                found.append((start, total + current))
            total = None
            previous_unit = False
    if total is not None:
        found.append((start, total + current))
    found.sort(key=lambda item: item[0])
    return [value for _, value in found]


def answer_of(words: frozenset[str], padded: str, language: str = "") -> str:
    """"yes", "no", or "" for a reply that is neither (or both), read in `language` (English
    when it has no words of its own in `ANSWERS`)."""
    table = ANSWERS.get(language) or ANSWERS["en"]
    for phrase in table.unsure_phrases:
        if phrase in padded:
            return ""
    for phrase in table.yes_phrases:
        if phrase in padded:
            return "yes"
    for phrase in table.no_phrases:
        if phrase in padded:
            return "no"
    yes = not table.yes.isdisjoint(words)
    no = not table.no.isdisjoint(words)
    if yes == no:
        return ""
    return "yes" if yes else "no"


class Text:
    """One reply, read once per step. Attributes after `words` are computed on first use."""

    __slots__ = ("_answer", "_canonical", "_numbers", "_padded", "_spellings", "folded",
                 "language", "media", "nfkc", "raw", "repeats", "tokens", "words")

    def __init__(self, raw: str, media: tuple[str, ...] = (), *, limit: int = READ_LIMIT,
                 language: str = ""):
        self.raw = raw
        self.media = media
        self.language = language
        """The conversation's language (its `answer` words, its intents' patterns)."""
        read = raw[:limit]
        # NFKC can lengthen a text (one ligature becomes up to 18 letters): cut again after it
        nfkc = read if read.isascii() else unicodedata.normalize("NFKC", read)[:limit]
        self.nfkc = nfkc
        folded = nfkc.lower() if nfkc.isascii() else strip_accents(nfkc.casefold())
        if "'" in folded or "’" in folded or "`" in folded or "´" in folded:
            folded = _APOSTROPHE.sub("", folded)
        self.folded = folded
        tokens = WORD.findall(folded)
        self.tokens = tokens
        words = set(tokens)
        self.repeats = _REPEAT.search(folded) is not None
        if self.repeats:
            for token in tokens:
                words.update(squeeze(token))
        if not read.isascii():
            for emoji, word in EMOJI_WORDS.items():
                if emoji in read:
                    words.add(word)
        self.words = frozenset(words)
        self._padded: tuple[str, ...] | None = None
        self._numbers: list[float] | None = None
        self._answer: str | None = None
        self._canonical: tuple[tuple[str, ...], ...] | None = None
        self._spellings: tuple[tuple[str, ...], ...] | None = None

    @property
    def padded(self) -> tuple[str, ...]:
        """" hey u there " (plus the squeezed spellings when letters repeat), for phrases."""
        if self._padded is None:
            tokens = self.tokens
            spellings = [f" {' '.join(tokens)} "]
            if self.repeats:
                for i in range(2):
                    spellings.append(
                        f" {' '.join((squeeze(t) or (t, t))[i] for t in tokens)} ")
            self._padded = tuple(spellings)
        return self._padded

    @property
    def numbers(self) -> list[float]:
        if self._numbers is None:
            self._numbers = parse_numbers(self.folded)
        return self._numbers

    @property
    def answer(self) -> str:
        if self._answer is None:
            self._answer = answer_of(self.words, self.padded[-1], self.language)
        return self._answer

    @property
    def spellings(self) -> tuple[tuple[str, ...], ...]:
        """For each word in order, its spellings: as sent, and repeats squeezed."""
        if self._spellings is None:
            self._spellings = tuple((token, *squeeze(token)) for token in self.tokens)
        return self._spellings

    @property
    def canonical(self) -> tuple[tuple[str, ...], ...]:
        """For each word in order, its spellings (as sent, repeats squeezed), text-speak
        spelled out."""
        if self._canonical is None:
            tokens = self.tokens
            if self.repeats:
                self._canonical = tuple(
                    tuple(dict.fromkeys(canonical(s) for s in (token, *squeeze(token))))
                    for token in tokens)
            else:
                get = TEXTSPEAK.get
                self._canonical = tuple((get(token, token),) for token in tokens)
        return self._canonical
