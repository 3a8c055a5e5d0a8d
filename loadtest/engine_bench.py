"""The worst engine step for hostile texts against normal ones, and the memory they leave.

    python -m loadtest.engine_bench [--rounds 5] [--json]

Steps the shipped buyer-deterrence scenario (the engine alone: no store, no gateway) with
normal buyer texts and with adversarial ones up to a full-length SMS (1,600 characters): one
very long word, words of the keywords' lengths (random, and shuffles of the keywords), many
short words, repeated letters, digits, dotted "domains", emoji and combining marks. Every
adversarial text is new in each round (fresh random letters), so no cache hides its cost. Each
text is stepped in the first state (globals and the opening intents) and in the greeting state.
Prints the median and worst step time of each kind, and RSS before and after (the growth is
what caches kept).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from intercept.config import load_config
from intercept.engine import Machine, Message, Start, load_scenario
from intercept.foundation.resources import bundled_root

NORMAL = [
    "hey is this available", "how much for an hour", "ok tonight at 9pm", "my place is fine",
    "here u go", "hello?", "r u a cop", "how much 4 the nite", "can u send a pic first",
    "i have 200 is that ok", "this is mike, u free tmrw?", "wheres ur place at",
    "im not a cop lol", "sounds good see u then", "whats the donation", "heyyyy u there??",
]
MAX_TEXT = 1600
T0 = 1_700_000_000.0


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=n))


def _lookalike(rng: random.Random) -> str:
    """A shuffle of a fuzzy keyword of the shipped scenario: its letters, so no shortcut
    rules it out, and almost never a real typo of it."""
    word = list(rng.choice(["undercover", "entrapment", "donation", "pictures", "selfie"]))
    rng.shuffle(word)
    return "".join(word)


ADVERSARIAL: dict[str, Callable[[random.Random], str]] = {
    "word_1000": lambda r: _letters(r, 1000),
    "word_1600": lambda r: _letters(r, MAX_TEXT),
    "words_near_keywords": lambda r: " ".join(_letters(r, r.randint(8, 14))
                                              for _ in range(MAX_TEXT // 12)),
    "keyword_lookalikes": lambda r: " ".join(_lookalike(r) for _ in range(MAX_TEXT // 10)),
    "words_of_40": lambda r: " ".join(_letters(r, 40) for _ in range(MAX_TEXT // 41)),
    "many_short_words": lambda r: " ".join(_letters(r, 2) for _ in range(MAX_TEXT // 3)),
    "repeated_letters": lambda r: "".join(c * r.randint(3, 9)
                                          for c in _letters(r, 300))[:MAX_TEXT],
    "digits": lambda r: "".join(r.choices("0123456789", k=MAX_TEXT)),
    "dotted": lambda r: ".".join(_letters(r, 1) for _ in range(MAX_TEXT // 2)),
    "emoji_and_marks": lambda r: "".join(r.choice(["💰", "👍", "é", "e\u0301", "ß", "ﬁ"])
                                         for _ in range(MAX_TEXT))[:MAX_TEXT],
    "text_over_limit": lambda r: _letters(r, 20_000),
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def step_seconds(machine: Machine, context: dict[str, str], text: str) -> list[float]:
    """Seconds of one step of `text` in the first state and in the greeting state."""
    times = []
    state, _ = machine.step(machine.new_state(seed=1, context=context), Start(), T0)
    for before in ((), ("hey",)):
        at = state
        for line in before:
            at, _ = machine.step(at, Message(line), T0 + 1)
        started = time.perf_counter()
        machine.step(at, Message(text), T0 + 2)
        times.append(time.perf_counter() - started)
    return times


def bench(rounds: int, scenario: Path, kinds: list[str]) -> dict[str, dict[str, float]]:
    machine = load_scenario(scenario)
    config = load_config(bundled_root() / "config" / "intercept.toml", environ={})
    context = config.context_for(config.numbers[0])
    rng = random.Random(13)
    for text in NORMAL:  # warm up: imports, regex compilation
        step_seconds(machine, context, text)
    gc.collect()
    results: dict[str, dict[str, float]] = {}
    times = [t for _ in range(rounds) for text in NORMAL
             for t in step_seconds(machine, context, text)]
    results["normal"] = {"median_ms": statistics.median(times) * 1e3,
                         "worst_ms": max(times) * 1e3}
    rss_before = rss_bytes()
    for kind in kinds:
        make = ADVERSARIAL[kind]
        times = [t for _ in range(rounds) for t in step_seconds(machine, context, make(rng))]
        results[kind] = {"median_ms": statistics.median(times) * 1e3,
                         "worst_ms": max(times) * 1e3}
        print(f"{kind:>20}: median {results[kind]['median_ms']:9.2f} ms, worst "
              f"{results[kind]['worst_ms']:9.2f} ms", file=sys.stderr)
    gc.collect()
    rss_after = rss_bytes()
    results["rss"] = {"before_mib": rss_before / 2**20, "after_mib": rss_after / 2**20,
                      "growth_mib": (rss_after - rss_before) / 2**20}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5,
                        help="fresh texts of each adversarial kind (default 5)")
    parser.add_argument("--scenario", type=Path,
                        default=bundled_root() / "scenarios" / "buyer-deterrence.yaml")
    parser.add_argument("--only", default=",".join(ADVERSARIAL),
                        help="adversarial kinds to run, comma-separated (default: all of "
                        f"{', '.join(ADVERSARIAL)})")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in ADVERSARIAL]
    if unknown or not kinds:
        parser.error(f"--only: unknown kind {', '.join(unknown) or '(none given)'}; the kinds "
                     f"are {', '.join(ADVERSARIAL)}")
    results = bench(max(args.rounds, 1), args.scenario, kinds)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return
    normal = results.pop("normal")
    rss = results.pop("rss")
    worst_kind = max(results, key=lambda k: results[k]["worst_ms"])
    print(f"normal texts: median {normal['median_ms']:.3f} ms, worst {normal['worst_ms']:.3f} ms"
          f" per step\nadversarial texts: worst {results[worst_kind]['worst_ms']:.2f} ms per "
          f"step ({worst_kind})\nRSS {rss['before_mib']:.0f} -> {rss['after_mib']:.0f} MiB "
          f"(+{rss['growth_mib']:.0f} MiB)")


if __name__ == "__main__":
    main()
