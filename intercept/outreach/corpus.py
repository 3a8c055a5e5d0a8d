"""A labelled corpus of ad texts, and precision and recall of a number finder over it.

Each line of a corpus file is a JSON object: ``text`` (the ad), ``expected`` (the E.164 numbers
in it, in order; empty for a trap), and optionally ``kind`` (number, trap, both) and
``technique`` (the obfuscation or trap it exercises). Run as a module to print the figures:

    python -m intercept.outreach.corpus tests/data/ads_corpus.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers

from .extract import find_numbers

__all__ = ["Case", "Score", "evaluate", "load_corpus", "matcher_numbers", "our_numbers"]


@dataclass(frozen=True, slots=True)
class Case:
    """One labelled ad: its text, the numbers expected in it, and what it exercises."""

    text: str
    expected: tuple[str, ...]
    kind: str = "number"
    technique: str = ""
    line: int = 0


@dataclass(slots=True)
class Score:
    """Counts over a corpus: true and false positives, false negatives, and the cases missed."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    wrong: list[tuple[Case, list[str]]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0


def load_corpus(path: str | Path) -> list[Case]:
    """The cases of a corpus file; ValueError naming the line if one is malformed."""
    cases = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                expected = item["expected"]
                if not isinstance(item["text"], str) or not isinstance(expected, list):
                    raise TypeError
                cases.append(Case(item["text"], tuple(expected), item.get("kind", "number"),
                                  item.get("technique", ""), number))
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}:{number}: a corpus line must be a JSON object with "
                                 "a string 'text' and a list 'expected'.") from None
    return cases


def evaluate(cases: Iterable[Case], numbers: Callable[[str], list[str]]) -> Score:
    """Score a finder (text -> E.164 numbers) against the cases; each number counts once."""
    score = Score()
    for case in cases:
        got = Counter(numbers(case.text))
        expected = Counter(case.expected)
        hits = sum((got & expected).values())
        score.true_positives += hits
        score.false_positives += got.total() - hits
        score.false_negatives += expected.total() - hits
        if got != expected:
            score.wrong.append((case, list(got.elements())))
    return score


def our_numbers(text: str, region: str = "US") -> list[str]:
    """`find_numbers`, as E.164 strings."""
    return [found.e164 for found in find_numbers(text, region=region)]


def matcher_numbers(text: str, region: str = "US") -> list[str]:
    """phonenumbers' own PhoneNumberMatcher (lenient), as E.164 strings: the baseline."""
    return [phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            for match in phonenumbers.PhoneNumberMatcher(text, region)]


def _microseconds_per_text(numbers: Callable[[str], list[str]], texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        numbers(text)
    return (time.perf_counter() - started) / len(texts) * 1e6


def main(argv: list[str]) -> int:
    """Print the corpus size, precision and recall of ours and of the baseline."""
    if len(argv) != 1:
        print("usage: python -m intercept.outreach.corpus CORPUS.jsonl", file=sys.stderr)
        return 2
    cases = load_corpus(argv[0])
    kinds = Counter(case.kind for case in cases)
    expected = sum(len(case.expected) for case in cases)
    print(f"corpus: {len(cases)} ads ({kinds['number']} obfuscated numbers, {kinds['both']} "
          f"numbers among traps, {kinds['trap']} traps), {expected} numbers expected")
    for name, numbers in (("intercept", our_numbers), ("PhoneNumberMatcher", matcher_numbers)):
        score = evaluate(cases, numbers)
        speed = _microseconds_per_text(numbers, [case.text for case in cases] * 20)
        print(f"{name}: precision {score.precision:.3f}, recall {score.recall:.3f} "
              f"({score.true_positives} found, {score.false_positives} wrong, "
              f"{score.false_negatives} missed); {speed:.0f} µs per ad")
        if name == "intercept":
            for case, got in score.wrong:
                print(f"  line {case.line} ({case.technique}): expected {list(case.expected)}, "
                      f"got {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
