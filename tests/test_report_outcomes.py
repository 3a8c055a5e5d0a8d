"""The report's outcome measures on constructed histories. Return contacts: came back before or
after the deterrence, in another city, to another number, in the same conversation, outside the
window. Experiments and campaign variants: branch figures against a hand computation."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
import trio

from intercept.engine import compile_text
from intercept.foundation.stats import Proportion, needed_per_group, sample_size, wilson
from intercept.scenarios import ScenarioRegistry
from intercept.store.experiments import SplitRef, compare_campaign, compare_experiment
from intercept.store.returns import (
    DAY,
    ReturnRow,
    buyer_returns,
    city_lookup,
    period_of,
    return_rows,
    returns_report,
)
from intercept.store.schema import migrate

from helpers import OUR as HELPER_OUR
from helpers import SCENARIOS, cli, config_text, make_config, running, text, utc

ROOT = Path(__file__).resolve().parent.parent
SEA, SEA2, ATL, OUTREACH = "+12065550100", "+12065550101", "+14045550100", "+12065550130"
T0 = utc(2024, 5, 1)


class History:
    """A store filled by hand: conversations with their messages, ends and deterrence."""

    def __init__(self, path: Path | None = None) -> None:
        self.db = sqlite_utils.Database(path) if path else sqlite_utils.Database(memory=True)
        migrate(self.db)
        self.db["number_kinds"].insert_all([
            {"number": SEA, "kind": "buyer", "city": "seattle"},
            {"number": SEA2, "kind": "buyer", "city": "seattle"},
            {"number": ATL, "kind": "buyer", "city": "atlanta"},
            {"number": OUTREACH, "kind": "outreach", "city": "seattle"}])
        self.ids = 0

    def conversation(self, our: str, their: str, messages: list[float], *,
                     ended: float | None = None, outcome: str | None = None,
                     deterrence: tuple[str, float] | None = None, tag: str | None = None,
                     scenario: str = "deter") -> int:
        """`messages`: his texts (times); `ended`: when it ended; `deterrence`: the last
        reply's (status, sent_at)."""
        self.ids += 1
        cid = self.ids
        self.db["conversations"].insert({
            "id": cid, "our_number": our, "their_number": their,
            "status": "ended" if ended is not None else "active", "outcome": outcome,
            "scenario": scenario, "version": 1,
            "created_at": messages[0], "inbound_count": len(messages)})
        self.db["inbound"].insert_all([
            {"conversation_id": cid, "conv_seq": i + 1, "gateway": "sim",
             "gateway_id": f"{cid}-{i}", "our_number": our, "their_number": their,
             "body": "hi", "received_at": at} for i, at in enumerate(messages)])
        self.db["outbox"].insert({"id": f"{cid}.1.0", "conversation_id": cid, "position": 1,
                                  "body": "hey", "status": "delivered", "kind": "reply",
                                  "sent_at": messages[0] + 60})
        if deterrence is not None:
            status, at = deterrence
            self.db["outbox"].insert({"id": f"{cid}.9.0", "conversation_id": cid,
                                      "position": 9, "body": "decoy; help: link",
                                      "status": status, "kind": "reply",
                                      "sent_at": at if status in ("sent", "delivered") else None,
                                      "updated_at": at})
        if tag is not None:
            self.db["tags"].insert({"conversation_id": cid, "name": tag, "created_at": 0})
        if ended is not None:
            self.db["transitions"].insert({"conversation_id": cid, "scenario": "s",
                                           "version": 1, "turn": 1, "source": "a",
                                           "target": "end", "trigger": "goto", "at": ended})
        return cid

    def deterred(self, our: str, their: str, at: float, *, status: str = "delivered",
                 later: tuple[float, ...] = (), tag: str | None = None) -> int:
        """He texted at `at`, was deterred 30 minutes later, and wrote `later` in it."""
        return self.conversation(our, their, [at, *later], ended=at + 1800, outcome="deterred",
                                 deterrence=(status, at + 1800), tag=tag)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def returns(self) -> dict[str, Any]:
        return {b.number: b for b in buyer_returns(self.conn,
                                                    city_of_number=city_lookup(self.conn))}


def test_a_deterred_buyer_who_comes_back_to_another_number_in_another_city():
    h = History()
    h.deterred(SEA, "+15550000001", T0)
    h.conversation(ATL, "+15550000001", [T0 + 20 * DAY])
    (b,) = h.returns().values()
    assert (b.group, b.city, b.first_contact) == ("deterred", "seattle", T0)
    assert b.started == T0 + 1800 and b.delivered
    assert b.returned == T0 + 20 * DAY
    assert b.back_within(30) and b.back_within(90)


def test_a_return_after_30_days_counts_for_90_only():
    h = History()
    h.deterred(SEA, "+15550000002", T0)
    h.conversation(SEA2, "+15550000002", [T0 + 45 * DAY])
    (b,) = h.returns().values()
    assert not b.back_within(30) and b.back_within(90)


def test_a_return_outside_both_windows_is_no_return():
    h = History()
    h.deterred(SEA, "+15550000003", T0)
    h.conversation(SEA2, "+15550000003", [T0 + 120 * DAY])
    (b,) = h.returns().values()
    assert b.returned == T0 + 120 * DAY
    assert not b.back_within(30) and not b.back_within(90)


def test_answering_the_deterrence_is_not_coming_back_but_texting_again_days_later_is():
    h = History()
    h.deterred(SEA, "+15550000004", T0, later=(T0 + 1900, T0 + 3 * DAY))
    (b,) = h.returns().values()
    assert b.returned == T0 + 3 * DAY
    h2 = History()
    h2.deterred(SEA, "+15550000005", T0, later=(T0 + 1900,))
    (b2,) = h2.returns().values()
    assert b2.returned is None


def test_coming_back_before_the_deterrence_makes_him_one_who_left():
    """His first conversation ended without deterrence; he came back to another number
    (where he was deterred): he left, and came back within 30 days."""
    h = History()
    h.conversation(SEA, "+15550000006", [T0, T0 + 600], ended=T0 + 7200, outcome="expired")
    h.deterred(SEA2, "+15550000006", T0 + 10 * DAY)
    (b,) = h.returns().values()
    assert (b.group, b.started, b.returned) == ("left", T0 + 7200, T0 + 10 * DAY)
    assert not b.delivered and b.back_within(30)


def test_a_deterrence_that_failed_is_no_deterrence_and_an_open_one_is_not_judged():
    h = History()
    h.conversation(SEA, "+15550000007", [T0], ended=T0 + 1800, outcome="deterred",
                   deterrence=("failed", T0 + 1800))
    h.conversation(SEA, "+15550000008", [T0])
    h.deterred(SEA, "+15550000009", T0, status="sent")
    h.deterred(SEA, "+15550000015", T0, status="queued")
    found = h.returns()
    assert found["+15550000015"].group == "open"  # the deterrence is on its way
    assert found["+15550000007"].group == "left"
    assert (found["+15550000008"].group, found["+15550000008"].started) == ("open", None)
    assert found["+15550000009"].group == "deterred" and not found["+15550000009"].delivered


def test_outreach_numbers_never_count():
    h = History()
    h.deterred(SEA, "+15550000010", T0)
    h.conversation(OUTREACH, "+15550000010", [T0 + DAY])
    h.db["conversations"].update(2, {"kind": "outreach"})
    assert h.returns() == {}


def test_rows_per_city_and_month_judge_only_windows_that_have_passed():
    h = History()
    h.deterred(SEA, "+15550000011", T0)                       # comes back on day 20
    h.conversation(ATL, "+15550000011", [T0 + 20 * DAY])
    h.deterred(SEA, "+15550000012", T0 + DAY)                 # never comes back
    h.conversation(SEA, "+15550000013", [T0], ended=T0 + DAY, outcome="expired")
    h.conversation(SEA2, "+15550000013", [T0 + 5 * DAY])      # left, back on day 5
    h.deterred(ATL, "+15550000014", utc(2024, 6, 20))         # too recent for any window
    as_of = utc(2024, 7, 15)
    rows = returns_report(h.conn, as_of=as_of, city_of_number=city_lookup(h.conn))
    by = {(r.city, r.period): r for r in rows}
    assert [(r.city, r.period) for r in rows] == [
        ("atlanta", "2024-06"), ("atlanta", "all"), ("seattle", "2024-05"), ("seattle", "all"),
        ("total", "all")]
    sea = by["seattle", "2024-05"]
    assert (sea.deterred.buyers, sea.deterred.judged, sea.deterred.back) == (
        2, {30: 2, 90: 0}, {30: 1, 90: 0})
    assert (sea.left.buyers, sea.left.judged, sea.left.back) == (1, {30: 1, 90: 0},
                                                                 {30: 1, 90: 0})
    assert sea.delivered == 2
    atl = by["atlanta", "all"]
    assert (atl.deterred.buyers, atl.deterred.judged) == (1, {30: 0, 90: 0})
    total = by["total", "all"]
    assert (total.deterred.buyers, total.left.buyers, total.open) == (3, 1, 0)
    assert total.deterred.back[30] == 1
    only = return_rows(buyer_returns(h.conn, city_of_number=city_lookup(h.conn)),
                       as_of=as_of, period="all", city="atlanta")
    assert [(r.city, r.period) for r in only] == [("atlanta", "all"), ("total", "all")]
    later = return_rows(buyer_returns(h.conn, city_of_number=city_lookup(h.conn)),
                        as_of=as_of, since=utc(2024, 6, 1))
    assert isinstance(later[-1], ReturnRow) and later[-1].deterred.buyers == 1


@pytest.mark.parametrize(("period", "expected"), [
    ("month", "2024-05"), ("quarter", "2024-Q2"), ("year", "2024"), ("all", "all")])
def test_periods(period, expected):
    assert period_of(T0, period) == expected


def test_intercept_report_shows_return_contacts(tmp_path):
    (tmp_path / "intercept.toml").write_text(config_text(tmp_path))
    h = History(tmp_path / "intercept.db")
    back = time.time() - 100 * DAY
    h.deterred(SEA, "+15550000021", back)
    h.conversation(ATL, "+15550000021", [back + 10 * DAY])
    h.deterred(SEA, "+15550000022", back)
    h.conversation(SEA, "+15550000023", [back], ended=back + 600, outcome="expired")
    h.db.conn.commit()
    h.db.close()
    result = cli(tmp_path, "report", "--period", "all", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["returns"]
    assert [(r["city"], r["period"]) for r in rows] == [("seattle", "all"), ("total", "all")]
    seattle = rows[0]
    assert seattle["deterred"]["buyers"] == 2 and seattle["deterrence_delivered"] == 2
    w30 = seattle["deterred"]["windows"]["30d"]
    assert (w30["judged"], w30["came_back"], w30["rate"]) == (2, 1, 0.5)
    assert 0 < w30["low"] < 0.5 < w30["high"] < 1
    assert seattle["left_before_deterrence"]["windows"]["90d"]["came_back"] == 0
    table = cli(tmp_path, "report", "--period", "all")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("return contacts"))
    assert lines[start + 1].split() == ["seattle", "all", "2", "2", "1/2", "50%", "1/2", "50%",
                                        "1", "0/1", "0%", "0/1", "0%", "0"]


def experiment_store(path: Path | None = None) -> History:
    """Experiment deter-timing: at_once deters 8 of 10 (2 of them come back, and 1 of the 2
    who left), later deters 5 of 10 (1 comes back, and 3 of the 5 who left)."""
    h = History(path)
    n = 0
    for branch, deterred, back_deterred, left, back_left in (
            ("at_once", 8, 2, 2, 1), ("later", 5, 1, 5, 3)):
        for i in range(deterred + left):
            n += 1
            their = f"+1555000{n:04d}"
            tag = f"deter_timing:{branch}"
            if i < deterred:
                h.deterred(SEA, their, T0, tag=tag)
                back = i < back_deterred
            else:
                h.conversation(SEA, their, [T0], ended=T0 + 600, outcome="expired", tag=tag)
                back = i - deterred < back_left
            if back:
                h.conversation(SEA2, their, [T0 + 10 * DAY])
    return h


AS_OF = T0 + 200 * DAY


def test_experiment_branches_match_a_hand_computation():
    h = experiment_store()
    found = compare_experiment(
        h.conn, "deter-timing", [SplitRef("deter", "deter_timing", ("at_once", "later"))],
        as_of=AS_OF, city_of_number=city_lookup(h.conn), effect=0.1)
    at_once, later = found.arms
    assert (at_once.name, at_once.conversations, later.conversations) == ("at_once", 10, 10)
    assert at_once.outcomes == {"deterred": 8, "expired": 2}
    # Wilson, z = 1.959964: 8/10 -> centre (0.8 + z²/20) / (1 + z²/10) = 0.71674,
    # half z·√(0.016 + z²/400) / (1 + z²/10) = 0.22658
    assert at_once.rates["deterrence sent"] == at_once.rates["deterrence delivered"]
    d = at_once.rates["deterrence delivered"]
    assert (d.successes, d.trials, d.rate) == (8, 10, 0.8)
    assert d.low == pytest.approx(0.4902, abs=1e-4) and d.high == pytest.approx(0.9433, abs=1e-4)
    d = later.rates["deterrence delivered"]
    assert d.low == pytest.approx(0.2366, abs=1e-4) and d.high == pytest.approx(0.7634, abs=1e-4)
    # pooled 13/20 = 0.65, against 0.55: (1.959964·√(2·0.6·0.4) + 0.841621·√(0.65·0.35 +
    # 0.55·0.45))² / 0.1² = (1.35790 + 0.58005)² / 0.01 = 375.6
    assert found.needed["deterrence delivered"] == 376
    back = at_once.rates["came back 30d"], later.rates["came back 30d"]
    assert [(p.successes, p.trials) for p in back] == [(3, 10), (4, 10)]
    assert found.needed["came back 30d"] == 376  # pooled 0.35 against 0.45: the same sum
    assert at_once.rates["outcome expired"].successes == 2
    assert later.rates["outcome deterred"].successes == 5
    # lengths: 8 conversations of 3 messages and 2 of 2: mean 2.8, s = √(1.6 / 9) = 0.42164,
    # half 1.959964 · 0.42164 / √10 = 0.26133
    assert at_once.length.mean == pytest.approx(2.8)
    assert at_once.length.low == pytest.approx(2.5387, abs=1e-4)
    assert at_once.length.high == pytest.approx(3.0613, abs=1e-4)
    assert at_once.length.median == 3


def test_stats_against_known_values():
    assert wilson(0, 0) == Proportion(0, 0, None, None, None)
    assert (wilson(20, 20).high, wilson(5, 10).rate) == (1.0, 0.5)
    p = wilson(0, 20)
    assert p.low == 0 and p.high == pytest.approx(0.1611, abs=1e-4)
    assert sample_size(0.5, 0.6) == 388  # (1.959964·√0.495 + 0.841621·√0.49)² / 0.01 = 387.3
    assert sample_size(0.3, 0.3) is None
    assert needed_per_group(None, 0.1) is None
    assert needed_per_group(0.9, 0.1) == sample_size(0.9, 0.8)


def test_campaign_variants_are_compared():
    h = History()
    h.db["campaigns"].insert({"name": "spring", "status": "running", "started_at": T0})
    n = 0
    for variant, texted, replied, positive in (("1", 10, 4, 2), ("2", 10, 1, 0)):
        for i in range(texted):
            n += 1
            their = f"+1555100{n:04d}"
            cid = h.conversation(OUTREACH, their, [T0 + 60], scenario="victim-outreach")
            h.db["conversations"].update(cid, {"kind": "outreach",
                                                "inbound_count": int(i < replied)})
            h.db["outbox"].insert({"id": f"{cid}.0.100", "conversation_id": cid,
                                   "position": 100, "body": "hi", "status": "delivered",
                                   "kind": "campaign", "sent_at": T0})
            h.db["campaign_targets"].insert({
                "campaign": "spring", "number": their, "city": "seattle", "status": "sent",
                "conversation_id": cid, "our_number": OUTREACH, "variant": variant, "at": T0})
            if i < positive:
                h.db["advocate_outcomes"].insert({"conversation_id": cid,
                                                  "kind": "positive_conversation",
                                                  "author": "sam", "at": T0 + DAY})
    found = compare_campaign(h.conn, "spring", effect=0.2)
    one, two = found.arms
    assert [(a.name, a.conversations) for a in found.arms] == [("1", 10), ("2", 10)]
    assert (one.rates["replied"].successes, two.rates["replied"].successes) == (4, 1)
    assert (one.rates["positive"].successes, one.rates["handed off"].successes) == (2, 2)
    assert two.rates["positive"].successes == 0 and two.rates["positive"].trials == 10
    assert found.needed["replied"] == sample_size(0.25, 0.45)


EXPERIMENT_SCENARIO = """
name: deter
version: 1
start: pick
states:
  pick:
    split:
      record: deter_timing
      experiment: deter-timing
      branches:
        - {name: at_once, goto: deter}
        - {name: later, goto: chat}
  chat:
    say: "hey"
    expect:
      - otherwise: true
        goto: deter
  deter:
    say: "decoy. help: {city.link}"
    end: deterred
"""


def experiment_config(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    (tmp_path / "scenarios" / "deter.yaml").write_text(EXPERIMENT_SCENARIO)
    (tmp_path / "intercept.toml").write_text(
        config_text(tmp_path).replace(f'dir = "{SCENARIOS}"',
                                      f'dir = "{tmp_path / "scenarios"}"'))


def test_intercept_report_experiment(tmp_path):
    experiment_config(tmp_path)
    h = experiment_store(tmp_path / "intercept.db")
    h.db.conn.commit()
    h.db.close()
    result = cli(tmp_path, "report", "--experiment", "deter-timing")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Experiment deter-timing (deter), all time"
    assert lines[2].split() == ["at_once", "later", "needed", "per", "branch", "(0.1)"]
    assert lines[3].split() == ["conversations", "10", "10"]
    assert lines[4].split() == ["deterrence", "sent", "8/10", "80.0%", "[49.0–94.3]",
                                "5/10", "50.0%", "[23.7–76.3]", "376"]
    assert lines[5].split()[:2] == ["deterrence", "delivered"]
    assert lines[6].split()[:2] == ["handed", "off"]
    assert any(line.startswith("length (messages)") and "2.8 [2.5–3.1]" in line
               for line in lines)
    data = json.loads(cli(tmp_path, "report", "--experiment", "deter-timing", "--json",
                          "--effect", "0.2").stdout)
    assert data["kind"] == "experiment" and data["effect"] == 0.2
    assert data["arms"][0]["rates"]["came back 30d"]["successes"] == 3
    unknown = cli(tmp_path, "report", "--experiment", "nope")
    assert unknown.exit_code == 2
    assert "no scenario in" in unknown.output and "the experiments are deter-timing" in (
        unknown.output)
    both = cli(tmp_path, "report", "--experiment", "deter-timing", "--campaign", "x")
    assert both.exit_code == 2 and "not both" in both.output
    missing = cli(tmp_path, "report", "--campaign", "nope")
    assert missing.exit_code == 2 and "no campaign 'nope'" in missing.output


async def test_a_served_experiment_is_read_back_branch_by_branch(tmp_path, autojump_clock):
    """The real path: the engine draws the branches, the runtime records tags, outcomes and
    the outbox; the report reads them back."""
    machine = compile_text(EXPERIMENT_SCENARIO)
    buyers = [f"+1555200{i:04d}" for i in range(20)]
    async with running(tmp_path, make_config("deter"),
                       reg=ScenarioRegistry([machine])) as (server, phones):
        for number in buyers:
            await text(server, number, HELPER_OUR, "hi")
        await trio.sleep(5)
        later = [b for b in buyers if phones.by_number[b][0] == "hey"]
        at_once = [b for b in buyers if b not in later]
        assert later and at_once
        await trio.sleep(10 * DAY)
        for number in at_once[:2] + later[:1]:  # back to the same number, ten days on
            await text(server, number, HELPER_OUR, "hi again")
        as_of = server.clock.now() + 100 * DAY
    conn = sqlite3.connect(tmp_path / "test.db")
    try:
        found = compare_experiment(
            conn, "deter-timing", [SplitRef("deter", "deter_timing", ("at_once", "later"))],
            as_of=as_of, city_of_number=city_lookup(conn))
    finally:
        conn.close()
    first, second = found.arms
    assert (first.name, first.conversations) == ("at_once", len(at_once))
    assert (second.name, second.conversations) == ("later", len(later))
    assert first.rates["deterrence sent"] == wilson(len(at_once), len(at_once))
    assert second.rates["deterrence sent"] == wilson(len(later), len(later))
    assert first.rates["came back 30d"] == wilson(2, len(at_once))
    assert second.rates["came back 30d"] == wilson(1, len(later))
    # at once: hi, the deterrence (+ hi again); later: hi, hey, the deterrence (+ hi again)
    assert first.length.median == 2 and second.length.median == 3
