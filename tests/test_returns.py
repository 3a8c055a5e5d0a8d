"""Return contacts on constructed histories: came back before or after the deterrence, in
another city, to another number, in the same conversation, outside the window."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

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

from helpers import cli, config_text, utc

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
                     deterrence: tuple[str, float] | None = None) -> int:
        """`messages`: his texts (times); `ended`: when it ended; `deterrence`: the last
        reply's (status, sent_at)."""
        self.ids += 1
        cid = self.ids
        self.db["conversations"].insert({
            "id": cid, "our_number": our, "their_number": their,
            "status": "ended" if ended is not None else "active", "outcome": outcome,
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
        if ended is not None:
            self.db["transitions"].insert({"conversation_id": cid, "scenario": "s",
                                           "version": 1, "turn": 1, "source": "a",
                                           "target": "end", "trigger": "goto", "at": ended})
        return cid

    def deterred(self, our: str, their: str, at: float, *, status: str = "delivered",
                 later: tuple[float, ...] = ()) -> int:
        """He texted at `at`, was deterred 30 minutes later, and wrote `later` in it."""
        return self.conversation(our, their, [at, *later], ended=at + 1800, outcome="deterred",
                                 deterrence=(status, at + 1800))

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
    found = h.returns()
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
