"""`python -m loadtest.trio_costs`: measures every mechanism it names, refuses bad options."""

from __future__ import annotations

import json

import pytest

from loadtest import trio_costs


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(trio_costs, "SWITCHES", 200)
    monkeypatch.setattr(trio_costs, "CALLS", 300)
    monkeypatch.setattr(trio_costs, "SPAWNS", 200)


def test_it_reports_each_mechanism_in_microseconds(small, capsys):
    trio_costs.main(["--rounds", "1", "--json"])
    results = json.loads(capsys.readouterr().out)
    assert set(results) == {
        "task switch", "spawn and end a task",
        *(f"store call, {n} callers, {where}" for n in trio_costs.CALLERS
          for where in ("worker thread", "inline"))}
    assert all(micros > 0 for micros in results.values())


def test_it_prints_a_table(small, capsys):
    trio_costs.main(["--rounds", "1"])
    out = capsys.readouterr().out
    assert "task switch" in out and "store call, 15 callers, worker thread" in out


def test_it_refuses_zero_rounds(capsys):
    with pytest.raises(SystemExit):
        trio_costs.main(["--rounds", "0"])
    assert "--rounds: 0 must be above 0" in capsys.readouterr().err
