"""`python -m loadtest.gcprobe`: the report's structure and its counts (never its timings)."""

from __future__ import annotations

import gc
import math

import pytest

from loadtest import gcprobe


@pytest.fixture(autouse=True)
def _restore_thresholds():
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)


def test_the_live_probe_counts_objects_and_bytes_per_live_conversation(capsys):
    report = gcprobe.main(["--conversations", "20", "--messages", "20", "--top", "40",
                           "--threshold", "40000,10,10"])
    assert report["live"] == 20
    assert report["thresholds"] == [40000, 10, 10]
    per = report["tracked_objects_per_conversation"]
    assert math.isfinite(per) and per > 0
    types = {row["type"]: row["per_conversation"] for row in report["types"]}
    # every live actor is one task of ours, waiting on its inbox (give or take an object of
    # whatever else the process did meanwhile)
    assert abs(types["Task"] - 1) < 0.2 and abs(types["ConversationActor"] - 1) < 0.2
    assert "CancelScope" not in types  # deadlines are in the shared Alarms
    assert 0 < report["traced_bytes_per_conversation"] < 1_000_000
    assert any(row["line"].startswith("intercept/") for row in report["bytes_by_line"])
    assert all(math.isfinite(row["bytes_per_conversation"]) for row in report["bytes_by_line"])
    assert report["messages"] == 20
    assert set(report["collections"]) == {"gen0", "gen1", "gen2"}
    assert set(report["collection_with_n_live"]) == {"full_ms", "middle_ms"}
    assert set(report["collections_while_opening"]) == {"gen0", "gen1", "gen2"}
    out = capsys.readouterr().out
    assert "tracked objects per live conversation" in out and "ConversationActor" in out


def test_the_cycle_probe_reports_each_cycle_and_the_growth(capsys):
    report = gcprobe.main(["--conversations", "3", "--cycles", "3", "--hibernate-after",
                           "0.2", "--json"])
    assert [row["cycle"] for row in report["cycles"]] == [1, 2, 3]
    assert [row["ended"] for row in report["cycles"]] == [3, 6, 9]  # every one, each cycle
    assert all(row["tracked_objects"] > 0 and row["rss_mib"] > 0 for row in report["cycles"])
    assert set(report["growth_per_cycle_after_warmup"]) == {"tracked_objects",
                                                            "frozen_objects", "rss_mib"}
    assert '"cycles"' in capsys.readouterr().out


def test_the_probe_refuses_a_bad_threshold(capsys):
    with pytest.raises(SystemExit):
        gcprobe.main(["--threshold", "lots"])
    assert "give 1 to 3 integers" in capsys.readouterr().err
