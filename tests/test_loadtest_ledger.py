"""The load tester's accounting: lost, duplicates and violations are found, exactly."""

from __future__ import annotations

import phonenumbers
import pytest
import trio

from loadtest.behaviours import assign, buyer_number
from loadtest.ledger import Histogram, Ledger, Reply, tag

CONFIRM = "you are unsubscribed"
OUR, OTHER = "+12065550100", "+12065550101"
PHONE = "+12125550001"


def sent(ledger: Ledger, n: int, *, kind: str = "reply", our: str = OUR, at: float = 0.0
         ) -> None:
    ledger.expect(1, n, their=PHONE, our=our, kind=kind, behaviour="human", now=at)  # type: ignore[arg-type]


def reply(text: str, *, at: float = 0.05, our: str = OUR, key: str | None = None) -> Reply:
    return Reply(their=PHONE, our=our, text=text, at=at, key=key or f"{our}>{PHONE}:{text}")


def test_an_answered_message_is_neither_lost_nor_duplicated():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1, at=1.0)
    ledger.received_reply(reply(f"re: hey {tag(1, 1)}", at=1.004))
    assert (len(ledger.lost()), ledger.duplicates, ledger.violations) == (0, 0, 0)
    assert ledger.outstanding == 0
    assert ledger.percentiles()["p50"] == pytest.approx(4.0, abs=0.01)


def test_percentiles_since_leave_out_the_texts_sent_before():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1, at=1.0)
    sent(ledger, 2, at=5.0)
    ledger.received_reply(reply(f"re: a {tag(1, 1)}", at=1.9))  # 900 ms, during the ramp-up
    ledger.received_reply(reply(f"re: b {tag(1, 2)}", at=5.01))  # 10 ms
    assert ledger.percentiles()["max"] == pytest.approx(900.0, abs=0.01)
    assert ledger.latencies_since(5.0) == [pytest.approx(0.01)]
    assert ledger.percentiles(since=5.0)["max"] == pytest.approx(10.0, abs=0.01)
    assert ledger.percentiles(since=6.0) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_a_message_without_an_answer_is_lost():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1)
    sent(ledger, 2)
    ledger.received_reply(reply(f"re: a {tag(1, 2)}"))
    assert [(e.buyer, e.n) for e in ledger.lost()] == [(1, 1)]


def test_the_same_reply_received_twice_is_a_duplicate():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1)
    ledger.received_reply(reply(f"re: a {tag(1, 1)}", key="outbox-7"))
    ledger.received_reply(reply(f"re: a {tag(1, 1)}", key="outbox-7"))
    assert (ledger.duplicates, ledger.duplicate_deliveries, len(ledger.lost())) == (1, 1, 0)


def test_two_different_replies_to_one_message_are_a_duplicate():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1)
    ledger.received_reply(reply(f"re: a {tag(1, 1)}", key="outbox-7"))
    ledger.received_reply(reply(f"re: a {tag(1, 1)}", key="outbox-8"))
    assert (ledger.duplicates, ledger.double_answers) == (1, 1)


def test_tags_are_not_confused_by_longer_numbers():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1)
    ledger.received_reply(reply(f"re: a {tag(1, 12)}"))
    assert ledger.unexpected == 1
    assert len(ledger.lost()) == 1


def test_stop_expects_one_confirmation_and_then_silence():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1)
    ledger.received_reply(reply(f"re: hi {tag(1, 1)}"))
    sent(ledger, 2, kind="confirmation")
    sent(ledger, 3, kind="none")
    assert ledger.outstanding == 1
    ledger.received_reply(reply(CONFIRM))
    assert (len(ledger.lost()), ledger.duplicates, ledger.violations) == (0, 0, 0)
    ledger.received_reply(reply(CONFIRM, key="again"))  # a second confirmation
    ledger.received_reply(reply(f"re: hello? {tag(1, 3)}"))  # an answer after opting out
    assert (ledger.extra_confirmations, ledger.after_optout) == (1, 1)


def test_a_missing_confirmation_is_lost():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1, kind="confirmation")
    assert [e.kind for e in ledger.lost()] == ["confirmation"]


def test_a_reply_from_the_wrong_number_and_an_unknown_reply_are_violations():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1, our=OTHER)
    ledger.received_reply(reply(f"re: a {tag(1, 1)}", our=OUR))
    ledger.received_reply(reply("hello from nowhere"))
    ledger.received_reply(reply(CONFIRM))  # nobody said STOP
    assert (ledger.misrouted, ledger.unexpected) == (1, 2)


def test_a_tag_can_only_be_sent_once():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1)
    with pytest.raises(ValueError, match="already sent"):
        sent(ledger, 1)


async def test_wait_returns_when_every_answer_came_or_at_the_timeout():
    ledger = Ledger(confirmation=CONFIRM)
    sent(ledger, 1)
    sent(ledger, 2)
    results = []

    async def waiter() -> None:
        results.append(await ledger.wait([(1, 1), (1, 2)], timeout=5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(0.01)
        ledger.received_reply(reply(f"re: {tag(1, 1)}"))
        await trio.sleep(0.01)
        assert results == []
        ledger.received_reply(reply(f"re: {tag(1, 2)}"))
    assert results == [True]
    sent(ledger, 3)
    assert await ledger.wait([(1, 3)], timeout=0.05) is False


def test_the_histogram_reads_quantiles_within_two_percent():
    histogram = Histogram()
    for i in range(1, 1001):
        histogram.add(i / 1000)  # 1 ms .. 1 s
    assert histogram.quantile(0.5) == pytest.approx(0.5, rel=0.02)
    assert histogram.quantile(0.99) == pytest.approx(0.99, rel=0.02)
    assert Histogram().quantile(0.5) is None


def test_behaviours_are_mixed_in_proportion_and_deterministically():
    mix = {"human": 5, "stop": 1, "rapid": 0}
    chosen = assign(mix, 600)
    assert chosen == assign(mix, 600)
    assert chosen.count("human") == pytest.approx(500, abs=3)
    assert chosen.count("stop") == pytest.approx(100, abs=3)
    assert "rapid" not in chosen


def test_buyer_numbers_are_valid_and_distinct():
    numbers = [buyer_number(i) for i in (0, 1, 9_999, 10_000, 199_999)]
    assert len(set(numbers)) == len(numbers)
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(n)) for n in numbers)
    with pytest.raises(ValueError, match="at most"):
        buyer_number(200_000)
