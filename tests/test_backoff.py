"""The one backoff helper and the one Retry-After parser (intercept/foundation/backoff.py)."""

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from intercept.foundation.backoff import MAX_RETRY_AFTER, backoff, parse_retry_after

NOW = 1_800_000_000.0


class Fixed:
    """A random source that always draws the same point of the range (0 = low, 1 = high)."""

    def __init__(self, at: float):
        self.at = at

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.at


def test_backoff_doubles_from_base_and_stops_at_cap():
    waits = [backoff(n, base=0.5, cap=10.0, jitter=(1.0, 1.0)) for n in range(8)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_backoff_jitter_spans_the_callers_range():
    assert backoff(3, base=1.0, cap=60.0, jitter=(0.5, 1.0), rng=Fixed(0.0)) == 4.0
    assert backoff(3, base=1.0, cap=60.0, jitter=(0.5, 1.0), rng=Fixed(1.0)) == 8.0
    assert backoff(0, base=30.0, cap=3600.0, jitter=(0.9, 1.1), rng=Fixed(0.0)) == pytest.approx(27)
    assert backoff(0, base=30.0, cap=3600.0, jitter=(0.9, 1.1), rng=Fixed(1.0)) == pytest.approx(33)
    rng = random.Random(7)
    for attempt in range(40):
        wait = backoff(attempt, base=1.0, cap=60.0, jitter=(0.8, 1.2), rng=rng)
        assert 0.8 * min(60.0, 2.0 ** attempt) <= wait <= 1.2 * min(60.0, 2.0 ** attempt)


def test_backoff_survives_huge_and_negative_attempt_counts():
    assert backoff(10**9, base=1.0, cap=30.0, jitter=(1.0, 1.0)) == 30.0
    assert backoff(-3, base=2.0, cap=30.0, jitter=(1.0, 1.0)) == 2.0
    # the exponent stops growing at max_exponent even under a far cap (the Twilio client's 16)
    assert backoff(40, base=1.0, cap=1e12, jitter=(1.0, 1.0), max_exponent=16) == 2.0 ** 16


@pytest.mark.parametrize(("value", "seconds"), [
    ("0", 0.0), ("120", 120.0), (" 3 ", 3.0), ("1.5", 1.5),
])
def test_retry_after_in_seconds(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_as_an_http_date():
    later = format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, now=NOW) == 90.0
    # the two obsolete forms RFC 9110 still asks recipients to read
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now=784111777 - 10) == 10.0
    assert parse_retry_after("Sun Nov  6 08:49:37 1994", now=784111777 - 10) == 10.0


def test_retry_after_in_the_past_means_now():
    earlier = format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True)
    assert parse_retry_after(earlier, now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "  ", "soon", "-5", "-0.5", "1e3", "inf", "nan",
                                   "12 seconds", "Mon, 99 Foo 2026 99:99:99 GMT"])
def test_retry_after_garbage_and_negative_are_none(value):
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_huge_values_are_capped():
    assert parse_retry_after("99999999999", now=NOW) == MAX_RETRY_AFTER
    assert parse_retry_after("7200", now=NOW, cap=3600.0) == 3600.0
    far = format_datetime(datetime.fromtimestamp(NOW + 10**7, UTC), usegmt=True)
    assert parse_retry_after(far, now=NOW) == MAX_RETRY_AFTER


def test_both_http_clients_read_retry_after_the_same_way():
    """The Twilio client and the media fetcher share the parser: an HTTP-date is honoured by
    both (before, the media fetcher ignored it and the Twilio client ignored it too)."""
    from intercept.buyers.media import BACKOFF_CAP
    from intercept.buyers.media import _retry_after as media_retry_after
    from intercept.gateways.twilio.client import _retry_after as twilio_retry_after

    soon = format_datetime(datetime.fromtimestamp(NOW + 1000, UTC), usegmt=True)
    for value in ("30", soon, "-4", "soon"):
        response = httpx.Response(429, headers={"retry-after": value})
        twilio, media = twilio_retry_after(response), media_retry_after(response)
        assert (twilio is None) == (media is None), value
    response = httpx.Response(429, headers={"retry-after": str(10**6)})
    assert media_retry_after(response) == BACKOFF_CAP
    assert twilio_retry_after(response) == MAX_RETRY_AFTER
