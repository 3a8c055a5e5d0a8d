"""The fault-matrix harness (loadtest/faults.py): its table, its CLI, and one real case."""

from __future__ import annotations

import pytest

from loadtest import faults


def test_every_case_says_what_it_expects_and_the_quick_subset_is_not_empty():
    assert faults.CASES and all(c.expected for c in faults.CASES.values())
    assert any(c.quick for c in faults.CASES.values())


def test_the_table_marks_failures_and_escapes_pipes():
    rows = [faults.Row("a", "x | y", "seen", "1 s", True),
            faults.Row("b", "z", "not seen", "", False)]
    text = faults.table(rows)
    assert "| a | x \\| y | seen | 1 s | pass |" in text
    assert "| b | z | not seen |  | **FAIL** |" in text


def test_an_unknown_case_is_a_usage_error_naming_the_cases(capsys):
    with pytest.raises(SystemExit) as stop:
        faults.main(["--case", "nope"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unknown case nope" in err and "kill-9" in err


@pytest.mark.slow
def test_a_tampered_webhook_case_runs_against_a_real_server(capsys):
    assert faults.main(["--case", "webhook-tampered"]) == 0
    out = capsys.readouterr().out
    assert "| webhook-tampered |" in out and "4/4 refused with 403; 0 stored" in out


def test_a_case_that_cannot_run_here_is_skipped_not_failed(capsys, monkeypatch):
    async def cannot(folder):
        return None, "not run: mounting a tmpfs was refused", ""

    monkeypatch.setitem(faults.CASES, "nowhere", faults.Case("nowhere", "x", False,
                                                             faults.case("nowhere", "x")(cannot)))
    assert faults.main(["--case", "nowhere"]) == 0
    out = capsys.readouterr().out
    assert "| skipped |" in out and "skipped here: nowhere" in out
