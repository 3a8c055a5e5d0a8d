"""`intercept ads import`: JSON lines, CSV and an HTTP feed (mock transport), duplicates merged,
bad lines reported with FILE:LINE, and the ad text never stored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from intercept.cli import ads as cli_ads
from intercept.cli import main
from intercept.outreach.ads import parse_time

CONFIG = """\
[store]
path = "{db}"

[cities.seattle]
name = "Seattle"
link = "https://help.example/sea"
timezone = "America/Los_Angeles"

[cities.london]
name = "London"
link = "https://help.example/ldn"
region = "GB"
timezone = "Europe/London"
"""


@pytest.fixture
def setup(tmp_path):
    db = tmp_path / "ads.db"
    config = tmp_path / "intercept.toml"
    config.write_text(CONFIG.format(db=db))
    return config, db


def run(config: Path, *args: str):
    return CliRunner().invoke(main, ["ads", "import", *args, "--config", str(config)])


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_json_lines_with_duplicates_and_bad_lines(setup, tmp_path):
    config, db = setup
    ads = tmp_path / "scraped.jsonl"
    lines = [
        {"id": "a1", "text": "new in town, call 2O6-5five5-0one23 ❤", "url": "https://ads/a1",
         "posted_at": "2024-05-01T10:00:00Z"},
        {"id": 2, "text": "ask for Kim 206.555.0124 or 2065550123", "posted_at": 1714557600},
        {"id": "a1", "text": "new in town, call 2O6-5five5-0one23 ❤"},  # the same id
        {"id": "zz", "text": "NEW in town,   call 2O6-5five5-0one23 ❤"},  # the same text
        {"text": "visiting London, ring 07400 123456", "city": "london"},
        {"text": "no number here, 150 roses"},
    ]
    body = "\n".join(json.dumps(x) for x in lines)
    body += '\nnot json\n{"id": "b"}\n{"text": 5}\n{"text": "x 2065550125", "city": "paris"}\n'
    body += '{"text": "y", "posted_at": "last week"}\n\n["a list"]\n'
    ads.write_bytes(body.encode() + b'{"text": "\xff"}\n')
    result = run(config, str(ads), "--city", "seattle", "--source", "scraper")
    assert result.exit_code == 1
    assert result.stdout == (f"{ads}: 6 ads read: 4 new, 2 merged; numbers: 3 new, 0 known; "
                             "7 lines skipped\n")
    assert result.stderr.splitlines() == [
        f"{ads}:7: not valid JSON (Expecting value at column 1). Line skipped.",
        f"{ads}:8: the 'text' field is missing. Line skipped.",
        f"{ads}:9: the 'text' field is not a string. Line skipped.",
        f"{ads}:10: unknown city 'paris'; the cities are london, seattle. Line skipped.",
        f"{ads}:11: posted_at: 'last week' is not a time (ISO 8601, e.g. 2024-05-01T20:15:00Z, "
        "or Unix seconds). Line skipped.",
        f"{ads}:13: not a JSON object. Line skipped.",
        f"{ads}:14: not UTF-8 text (byte 11). Line skipped.",
        f"{ads}: 7 lines skipped.",
    ]
    stored = rows(db, "SELECT source, external_id, city, url, posted_at, seen FROM ads "
                      "ORDER BY id")
    assert stored == [("scraper", "a1", "seattle", "https://ads/a1", 1714557600.0, 3),
                      ("scraper", "2", "seattle", None, 1714557600.0, 1),
                      ("scraper", None, "london", None, None, 1),
                      ("scraper", None, "seattle", None, None, 1)]
    assert rows(db, "SELECT ad_id, number FROM ad_numbers ORDER BY 1, 2") == [
        (1, "+12065550123"), (2, "+12065550123"), (2, "+12065550124"), (3, "+447400123456")]
    assert rows(db, "SELECT number, city FROM found_numbers ORDER BY 1") == [
        ("+12065550123", "seattle"), ("+12065550124", "seattle"), ("+447400123456", "london")]
    tables = [t for (t,) in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    everything = str([rows(db, f"SELECT * FROM {t}") for t in tables])
    assert "town" not in everything and "roses" not in everything  # texts are never stored
    again = run(config, str(ads), "--city", "seattle", "--source", "scraper")
    assert again.stdout.startswith(f"{ads}: 6 ads read: 0 new, 6 merged; numbers: 0 new, "
                                   "3 known; 7 lines skipped")
    assert rows(db, "SELECT count(*) FROM ads") == [(4,)]


def test_csv_with_another_text_column_and_city_column(setup, tmp_path):
    config, db = setup
    ads = tmp_path / "export.csv"
    ads.write_text('id,body,city,posted_at\n'
                   'c1,"call 206-555-0126, ask for ""Joy""",,2024-05-01\n'
                   'c2,"multi\nline 206 555 0127",seattle,\n'
                   'c3,"text 07400 123456",london,\n'
                   'c4,short row\n'
                   'c5,"x",seattle,tomorrow\n', encoding="utf-8")
    result = run(config, str(ads), "--field", "body", "--city", "seattle")
    assert result.exit_code == 1
    assert result.stdout == (f"{ads}: 3 ads read: 3 new, 0 merged; numbers: 3 new, 0 known; "
                             "2 lines skipped\n")
    assert result.stderr.splitlines()[:2] == [
        f"{ads}:6: 2 columns where the header has 4. Line skipped.",
        f"{ads}:7: posted_at: 'tomorrow' is not a time (ISO 8601, e.g. 2024-05-01T20:15:00Z, "
        "or Unix seconds). Line skipped."]
    assert rows(db, "SELECT external_id, source, city FROM ads ORDER BY id") == [
        ("c1", "export", "seattle"), ("c2", "export", "seattle"), ("c3", "export", "london")]
    assert rows(db, "SELECT number FROM found_numbers ORDER BY 1") == [
        ("+12065550126",), ("+12065550127",), ("+447400123456",)]
    headerless = tmp_path / "bad.csv"
    headerless.write_text("id,text2\n1,x\n")
    result = run(config, str(headerless), "--city", "seattle")
    assert result.exit_code == 1
    assert (f"{headerless}: the CSV header has no 'text' column (columns: id, text2); name it "
            "with --field") in result.stderr


def test_usage_errors(setup, tmp_path):
    config, _ = setup
    ads = tmp_path / "a.jsonl"
    ads.write_text('{"text": "call 2065550123"}\n')
    result = run(config, str(ads), "--city", "paris")
    assert result.exit_code == 2 and "unknown city 'paris'" in result.stderr
    result = run(config, str(ads), "--watch")
    assert result.exit_code == 2 and "--watch polls a feed" in result.stderr
    result = run(config, str(ads))
    assert result.exit_code == 1
    assert f"{ads}:1: no city: give --city, or a 'city' field. Line skipped." in result.stderr
    result = run(config, str(tmp_path / "missing.jsonl"), "--city", "seattle")
    assert result.exit_code == 1 and "Cannot read" in result.stderr


class Feed:
    """A feed server for httpx.MockTransport: ETag, If-None-Match and 304."""

    def __init__(self) -> None:
        self.version = 1
        self.ads = [{"id": "f1", "text": "call 206 555 0131"},
                    {"id": "f2", "text": "call 2065550132", "city": "seattle"},
                    {"id": "f3"}]
        self.requests: list[httpx.Request] = []
        self.fail = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            return httpx.Response(503)
        etag = f'"v{self.version}"'
        if request.headers.get("if-none-match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        return httpx.Response(200, json={"ads": self.ads}, headers={"ETag": etag})


def test_a_feed_is_polled_with_conditional_requests(setup, monkeypatch):
    config, db = setup
    feed = Feed()
    monkeypatch.setattr(cli_ads, "_http_client",
                        lambda: httpx.Client(transport=httpx.MockTransport(feed.handle)))
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:  # the feed does not change before the second poll
            return
        if len(sleeps) == 2:  # a new ad before the third
            feed.ads.append({"id": "f4", "text": "new: 206-555-0133"})
            feed.version = 2
            return
        if len(sleeps) == 3:
            feed.fail = True
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_ads.time, "sleep", sleep)
    url = "https://feed.example/ads.json"
    result = run(config, url, "--city", "seattle", "--watch", "--interval", "2m")
    assert result.exit_code == 1, result.output
    lines = [line.split(" ", 1)[1] for line in result.stdout.splitlines()]
    assert lines == [
        "poll 1: 2 ads read: 2 new, 0 merged; numbers: 2 new, 0 known; 1 line skipped",
        "poll 2: not modified since the last poll",
        "poll 3: 3 ads read: 1 new, 2 merged; numbers: 1 new, 2 known; 1 line skipped",
    ]
    err = result.stderr.splitlines()
    assert err[0] == err[1] == f"{url} item 3: the 'text' field is missing. Line skipped."
    assert err[2].endswith(f"poll 4: {url}: the feed answered HTTP 503")
    assert err[3:] == ["stopped after 4 polls", f"{url}: 2 lines skipped."]
    assert sleeps == [120.0] * 4
    assert [r.headers.get("if-none-match") for r in feed.requests] == [
        None, '"v1"', '"v1"', '"v2"']
    assert rows(db, "SELECT source, external_id FROM ads ORDER BY id") == [
        ("feed.example", "f1"), ("feed.example", "f2"), ("feed.example", "f4")]


def test_a_feed_once_and_its_errors(setup, monkeypatch):
    config, db = setup
    answers = iter([httpx.Response(200, json=[{"text": "call 2065550134", "id": 1}]),
                    httpx.Response(200, content=b"<html>"),
                    httpx.Response(200, json={"items": []})])
    monkeypatch.setattr(cli_ads, "_http_client", lambda: httpx.Client(
        transport=httpx.MockTransport(lambda request: next(answers))))
    url = "http://feed.example/ads"
    result = run(config, url, "--city", "seattle", "--source", "agency")
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"{url}: 1 ads read: 1 new, 0 merged; numbers: 1 new, "
                             "0 known\n")
    result = run(config, url, "--city", "seattle")
    assert result.exit_code == 1 and f"{url}: the feed is not valid JSON" in result.stderr
    result = run(config, url, "--city", "seattle")
    assert result.exit_code == 1
    assert "neither a JSON array of ads nor an object with an \"ads\" array" in result.stderr
    assert rows(db, "SELECT source FROM ads") == [("agency",)]


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-05-01", 1714521600.0), ("2024-05-01T10:00:00Z", 1714557600.0),
    ("2024-05-01T12:00:00+02:00", 1714557600.0), ("2024-05-01T10:00:00", 1714557600.0),
    (1714557600, 1714557600.0), ("1714557600", 1714557600.0)])
def test_posted_at_formats(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["soon", True, -5, [], "2024-13-01"])
def test_bad_posted_at(value):
    with pytest.raises(ValueError):
        parse_time(value)


def test_a_plain_text_file_is_read_as_ads_extract_reads_it(setup, tmp_path):
    config, db = setup
    ads = tmp_path / "ads.txt"
    ads.write_text("new in town, call 2O6-5five5-0one23\n\n"
                   '{"id": "j1", "text": "ask for Kim 206.555.0124"}\n'
                   "no number here\n", encoding="utf-8")
    result = run(config, str(ads), "--city", "seattle")
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"{ads}: 3 ads read: 3 new, 0 merged; numbers: 2 new, 0 known\n")
    assert rows(db, "SELECT source, external_id FROM ads ORDER BY id") == [
        ("ads", None), ("ads", "j1"), ("ads", None)]
    assert rows(db, "SELECT number FROM found_numbers ORDER BY 1") == [
        ("+12065550123",), ("+12065550124",)]
    as_jsonl = run(config, str(ads), "--city", "seattle", "--format", "jsonl")
    assert as_jsonl.exit_code == 1 and "not valid JSON" in as_jsonl.stderr


def test_db_without_config_takes_the_cities_the_server_registered(tmp_path, monkeypatch):
    from intercept.store import connect

    monkeypatch.chdir(tmp_path)  # no ./config/intercept.toml here: the shipped one is read
    monkeypatch.delenv("INTERCEPT_CONFIG", raising=False)
    db = tmp_path / "server.db"
    store = connect(db)
    ads = tmp_path / "ads.jsonl"
    ads.write_text('{"text": "call 206-555-0123"}\n{"text": "ring 07400 123456", '
                   '"city": "leeds"}\n', encoding="utf-8")

    def run_db(*args: str):
        return CliRunner().invoke(main, ["ads", "import", str(ads), "--db", str(db), *args])

    result = run_db("--city", "portland")
    assert result.exit_code == 1
    assert "names no cities yet" in result.output and "give --config" in result.output
    store.execute("INSERT INTO number_kinds (number, kind, city, updated_at) VALUES "
                  "('+15035550100', 'outreach', 'portland', 0), "
                  "('+441132960000', 'outreach', 'leeds', 0)")
    store.conn.close()
    result = run_db("--city", "nowhere")
    assert result.exit_code == 2 and "the cities are leeds, portland" in result.output
    result = run_db("--city", "portland")
    assert result.exit_code == 0, result.output
    assert rows(db, "SELECT number, city FROM found_numbers ORDER BY 1") == [
        ("+12065550123", "portland"), ("+447400123456", "leeds")]  # leeds reads GB numbers
