"""`intercept numbers`: our numbers with their kind and contracted rate."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from intercept.cli import main

CONFIG = """
[gateway]
url = "{url}"
rate_per_number = 1.0
rate = {bind_rate}
[scenarios]
dir = "{scenarios}"
[cities.seattle]
name = "Seattle"
link = "https://help.example"
[[numbers]]
number = "+12065550100"
city = "seattle"
scenario = "buyer-deterrence"
persona = {{ name = "Jasmine" }}
rate = 3.0
[[numbers]]
number = "+12065550101"
city = "seattle"
scenario = "buyer-deterrence"
kind = "outreach"
persona = {{ name = "Team" }}
"""

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def numbers(tmp_path: Path, url: str, bind_rate: float = 0.0, *args: str) -> str:
    path = tmp_path / "intercept.toml"
    path.write_text(CONFIG.format(url=url, bind_rate=bind_rate, scenarios=SCENARIOS))
    result = CliRunner().invoke(main, ["numbers", "--config", str(path), *args],
                                env={"INTERCEPT_GATEWAY_PASSWORD": "x",
                                     "INTERCEPT_GATEWAY_AUTH_TOKEN": "t" * 32})
    assert result.exit_code == 0, result.output
    return result.output


def test_numbers_json_has_kind_and_the_rate_with_where_it_comes_from(tmp_path):
    rows = [json.loads(line) for line in numbers(
        tmp_path, "twilio://AC0123456789abcdef0123456789abcdef@api.twilio.com", 0.0,
        "--json").splitlines()]
    assert [(r["kind"], r["rate"], r["rate_source"]) for r in rows] == [
        ("buyer", 3.0, "number"), ("outreach", 1.0, "gateway.rate_per_number")]


def test_numbers_over_smpp_show_the_bind_rate_or_no_limit(tmp_path):
    text = numbers(tmp_path, "smpp://intercept@127.0.0.1:2775", 50.0)
    assert "3/s (number)" in text and "50/s (the bind's gateway.rate)" in text
    text = numbers(tmp_path, "smpp://intercept@127.0.0.1:2775", 0.0)
    assert "no limit (the bind's gateway.rate)" in text


def test_numbers_health_reads_the_store_and_marks_a_paused_number(tmp_path):
    import sqlite3
    import time

    import sqlite_utils

    from intercept.store.schema import migrate

    db_path = tmp_path / "intercept.db"
    db = sqlite_utils.Database(sqlite3.connect(db_path))
    migrate(db)
    now = time.time()
    db.execute("INSERT INTO conversations (id, our_number, their_number) VALUES (1, 'a', 'b')")
    for i in range(30):
        db.execute("INSERT INTO outbox (id, conversation_id, position, our_number, body, status, "
                   "error, updated_at) VALUES (?, 1, ?, '+12065550100', 'x', ?, ?, ?)",
                   (str(i), i, "failed" if i < 12 else "delivered",
                    "provider error 30034" if i < 12 else None, now - 60))
    db.conn.commit()
    db.conn.close()
    path = tmp_path / "intercept.toml"
    path.write_text(CONFIG.format(url="sim://", bind_rate=0.0, scenarios=SCENARIOS))
    runner = CliRunner()
    result = runner.invoke(main, ["numbers", "--config", str(path), "--health", "--db",
                                  str(db_path)])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[1]
    assert "+12065550100" in first and "40.0%" in first and "unregistered_sender 12" in first
    assert first.endswith("PAUSED")
    result = runner.invoke(main, ["numbers", "--config", str(path), "--health", "--json",
                                  "--db", str(db_path)])
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows[0]["paused"] is True and rows[0]["reasons"] == {"unregistered_sender": 12}
    assert rows[1] == {"number": "+12065550101", "kind": "outreach", "settled": 0,
                       "delivered": 0, "failed": 0, "failure_share": 0.0, "reasons": {},
                       "paused": False}
    missing = runner.invoke(main, ["numbers", "--config", str(path), "--health", "--db",
                                   str(tmp_path / "nope.db")])
    assert missing.exit_code == 1 and "no store at" in missing.output
