"""`python -m loadtest.engine_bench`: runs, reports every kind asked for, refuses unknown ones."""

from __future__ import annotations

import json
import random

import pytest

from loadtest import engine_bench


def test_the_engine_bench_reports_normal_and_adversarial_steps_and_rss(capsys):
    engine_bench.main(["--rounds", "1", "--only", "word_1000,digits", "--json"])
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {"normal", "word_1000", "digits", "rss"}
    for kind in ("normal", "word_1000", "digits"):
        assert 0 < results[kind]["median_ms"] <= results[kind]["worst_ms"]
    assert set(results["rss"]) == {"before_mib", "after_mib", "growth_mib"}


def test_the_engine_bench_prints_a_summary(capsys):
    engine_bench.main(["--rounds", "1", "--only", "many_short_words"])
    out = capsys.readouterr().out
    assert "normal texts: median" in out and "(many_short_words)" in out and "RSS" in out


def test_the_engine_bench_names_the_kinds_it_knows(capsys):
    with pytest.raises(SystemExit):
        engine_bench.main(["--only", "word_1000,nope"])
    err = capsys.readouterr().err
    assert "unknown kind nope" in err and "word_1600" in err


def test_every_adversarial_text_is_long():
    rng = random.Random(1)
    for kind, make in engine_bench.ADVERSARIAL.items():
        text = make(rng)
        assert len(text) >= 1000, kind
