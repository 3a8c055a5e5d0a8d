"""CLI reads of buyer numbers (`intercept buyers list | show`) are written to the audit log."""

from __future__ import annotations

import sqlite3

from helpers import BUYER, VICTIM, cli, populate


async def test_buyer_lists_and_searches_are_audited(tmp_path, autojump_clock):
    await populate(tmp_path)
    assert cli(tmp_path, "buyers", "list").exit_code == 0
    assert cli(tmp_path, "buyers", "list", "--full-numbers", "--city", "seattle",
               "--since", "2000-01-01", "--json").exit_code == 0
    assert cli(tmp_path, "buyers", "show", BUYER).exit_code == 0
    assert cli(tmp_path, "buyers", "show", VICTIM).exit_code == 1  # withheld, still audited
    rows = sqlite3.connect(tmp_path / "intercept.db").execute(
        "SELECT actor, role, action, status, detail FROM audit ORDER BY id").fetchall()
    assert all(actor.startswith("cli:") and role == "cli" for actor, role, *_ in rows)
    assert [row[2:] for row in rows] == [
        ("CLI intercept buyers list", 200, "2 profiles with masked numbers"),
        ("CLI intercept buyers list", 200,
         "1 profiles with full numbers, city=seattle, since=2000-01-01"),
        ("CLI intercept buyers show", 200, "buyer +1••••••••99: found"),
        ("CLI intercept buyers show", 200, "buyer +1••••••••66: no profile")]
    assert not any(n in str(rows) for n in (BUYER, VICTIM))
