"""`intercept report --html FILE`: one self-contained page with SVG charts, no script, every
text escaped, counts only."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import sqlite_utils

from intercept.cli.report import render_html
from intercept.foundation.stats import wilson
from intercept.store.experiments import Arm, Comparison
from intercept.store.report import CityFigures, Report, messages_per_day
from intercept.store.schema import migrate

from helpers import SCENARIOS, cli, config_text, utc

ROOT = Path(__file__).resolve().parent.parent
SEA, ATL = "+12065550100", "+14045550100"
T0 = utc(2024, 5, 1)
SCENARIO = """
name: deter
version: 1
start: pick
states:
  pick:
    split:
      record: wording
      experiment: wording-2024
      branches:
        - {name: plain, goto: a}
        - {name: firm, goto: b}
  a:
    say: "decoy. help: {city.link}"
    end: deterred
  b:
    say: "this was a decoy. help: {city.link}"
    end: deterred
"""


class Page(HTMLParser):
    """The elements of a page, their attributes, and its text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(t == tag for t, _ in self.tags)


def store(path: Path) -> None:
    db = sqlite_utils.Database(path)
    migrate(db)
    db["number_kinds"].insert_all([{"number": SEA, "kind": "buyer", "city": "seattle"},
                                   {"number": ATL, "kind": "buyer", "city": "atlanta"}])
    for cid, (our, their, branch, day) in enumerate(
            [(SEA, "+15550000001", "plain", 0), (SEA, "+15550000002", "firm", 1),
             (ATL, "+15550000003", "firm", 2)], start=1):
        at = T0 + day * 86400
        db["conversations"].insert({"id": cid, "our_number": our, "their_number": their,
                                    "scenario": "deter", "version": 1, "status": "ended",
                                    "outcome": "deterred", "inbound_count": 1,
                                    "created_at": at})
        db["inbound"].insert({"conversation_id": cid, "conv_seq": 1, "gateway": "sim",
                              "gateway_id": str(cid), "our_number": our, "their_number": their,
                              "body": "secret words", "received_at": at})
        db["outbox"].insert({"id": f"{cid}.1.0", "conversation_id": cid, "position": 1,
                             "our_number": our, "their_number": their, "body": "decoy",
                             "status": "delivered", "kind": "reply", "sent_at": at + 60})
        db["tags"].insert({"conversation_id": cid, "name": f"wording:{branch}",
                           "created_at": at})
        db["transitions"].insert({"conversation_id": cid, "scenario": "deter", "version": 1,
                                  "turn": 1, "source": "pick", "target": "a",
                                  "trigger": "goto", "at": at + 60})
    db.conn.commit()
    db.close()


def test_the_html_report_is_one_page_of_svg_charts_without_script(tmp_path):
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    (tmp_path / "scenarios" / "deter.yaml").write_text(SCENARIO)
    (tmp_path / "intercept.toml").write_text(config_text(tmp_path).replace(
        f'dir = "{SCENARIOS}"', f'dir = "{tmp_path / "scenarios"}"'))
    store(tmp_path / "intercept.db")
    out = tmp_path / "report.html"
    result = cli(tmp_path, "report", "--html", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert result.stdout.strip() == (f"wrote {out}: {text.count('<svg')} charts, 1 experiment "
                                     "compared")
    page = Page(text)
    assert text.startswith("<!DOCTYPE html>")
    assert page.count("script") == 0 and "javascript:" not in text.lower()
    assert not [a for _, attrs in page.tags for a in attrs
                if a.startswith("on") or a in ("src", "href")]  # nothing fetched, no handlers
    titles = [t for t in page.text if t.strip()]
    for heading in ("Messages per day, per city", "Victim outreach", "Buyer deterrence",
                    "Return contacts", "Experiment: wording-2024"):
        assert heading in titles
    svgs = [attrs for tag, attrs in page.tags if tag == "svg"]
    assert len(svgs) >= 6 and all(a["xmlns"] == "http://www.w3.org/2000/svg" for a in svgs)
    # messages per day: one line per city; the funnels' bars; the branches' intervals
    assert page.count("polyline") == 2
    assert {"atlanta", "seattle"} <= set(titles)
    assert page.count("circle") >= 2
    assert "secret words" not in text and "+1555" not in text  # counts only


def test_every_text_is_escaped():
    figures = CityFigures("<b>city</b>")
    arm = Arm("<script>alert(1)</script>", conversations=3,
              rates={"replied": wilson(1, 3)})
    page = render_html(
        title="Impact & <report>", subtitle="x", report=Report(None, [figures], figures),
        daily={"a\"b": {"2024-05-01": 2}}, returns=[],
        comparisons=[Comparison("campaign", "spring<1>", [arm], 0.1, {"replied": 100})])
    assert "<script" not in page and "<b>" not in page and "spring<1>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Impact &amp; &lt;report&gt;" in page and "a&quot;b" in page
    assert Page(page).count("svg") == 4


def test_messages_per_day_per_city(tmp_path):
    store(tmp_path / "s.db")
    conn = sqlite_utils.Database(tmp_path / "s.db").conn
    assert messages_per_day(conn) == {
        "atlanta": {"2024-05-03": 2}, "seattle": {"2024-05-01": 2, "2024-05-02": 2}}
    assert messages_per_day(conn, city="atlanta", since=T0 + 86400) == {
        "atlanta": {"2024-05-03": 2}}
