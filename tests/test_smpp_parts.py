"""The SMPP client's pure parts: the adaptive send rate, MO ids, addresses, configuration."""

from __future__ import annotations

import pytest

from intercept.config import config_from_dict
from intercept.errors import ConfigError
from intercept.gateways import gateway_from_config, smpp_settings
from intercept.gateways.sendrate import SendRate
from intercept.gateways.smpp.client import SmppGateway
from intercept.gateways.smpp.inbound import MoIds, from_address, mo_key, to_address


def test_a_rate_limit_spaces_tokens():
    rate = SendRate(10)
    now = 0.0
    granted = 0
    while now < 10:
        wait = rate.delay(now)
        if wait == 0:
            granted += 1
        else:
            now += wait
    assert 99 <= granted <= 101


class Cap:
    """An SMSC that accepts at most `rate` submits per second (a token bucket)."""

    def __init__(self, rate: float):
        self.rate, self.tokens, self.stamp = rate, 1.0, 0.0

    def __call__(self, now: float) -> bool:
        self.tokens = min(max(1.0, self.rate / 10), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def drive(rate: SendRate, smsc, *, demand: float, start: float, seconds: float,
          step: float = 0.001) -> list[int]:
    """Offer `demand` submits/s for `seconds`; `smsc(now)` accepts or throttles each one
    (answers come at once). Accepted submits per whole second."""
    per_second: list[int] = []
    owed, now, end = 0.0, start, start + seconds
    while now < end:
        second = int(now - start)
        if second == len(per_second):
            per_second.append(0)
        owed = min(owed + demand * step, 200.0)  # a queue of waiting messages
        refused = 0
        while owed >= 1 and rate.delay(now) == 0:
            owed -= 1
            if smsc(now):
                rate.accepted(now)
                per_second[second] += 1
            else:
                rate.throttled(now)
                refused += 1
        owed += refused  # tried again in a moment
        now += step
    return per_second


def test_sporadic_throttles_leave_the_rate_alone():
    import random

    chance = random.Random(7)
    rate = SendRate(None)
    accepted = drive(rate, lambda now: chance.random() >= 0.05, demand=300, start=0,
                     seconds=30)
    assert rate.throttles > 300 and rate.cuts == 0 and not rate.limited
    assert min(accepted[1:]) >= 0.8 * 300


def test_sporadic_throttles_keep_a_configured_rate():
    import random

    chance = random.Random(8)
    rate = SendRate(100)
    drive(rate, lambda now: chance.random() >= 0.05, demand=500, start=0, seconds=20)
    assert rate.cuts == 0 and rate.rate == 100


def test_a_contracted_rate_is_learned_and_the_median_accepted_rate_stays_near_it():
    rate = SendRate(None)
    accepted = drive(rate, Cap(200), demand=1000, start=0, seconds=30)
    steady = sorted(accepted[2:])
    assert steady[len(steady) // 2] >= 0.8 * 200
    assert rate.reference is not None and 100 <= rate.reference <= 230
    assert rate.limited or rate.cuts >= 1


def test_a_cut_stops_at_the_floor_unless_throttling_persists():
    rate = SendRate(100)
    drive(rate, Cap(100), demand=100, start=0, seconds=5)
    assert rate.rate == 100 and rate.cuts == 0
    # The SMSC now takes only 10/s: the limit first stops at half the configured 100 ...
    drive(rate, Cap(10), demand=300, start=5, seconds=2.6)
    assert rate.rate == pytest.approx(50)
    # ... and only when throttling persists there does it go lower, to what is accepted.
    drive(rate, Cap(10), demand=300, start=7.6, seconds=20)
    assert rate.rate is not None and rate.rate < 25


def test_the_rate_recovers_quickly_once_throttling_stops():
    rate = SendRate(100)
    drive(rate, Cap(40), demand=300, start=0, seconds=10)
    assert rate.rate is not None and rate.rate < 100
    drive(rate, lambda now: True, demand=300, start=10, seconds=8)
    assert rate.rate == 100  # back to the configured maximum within seconds, never above


def test_without_a_limit_the_limit_is_lifted_after_quiet_seconds():
    rate = SendRate(None, recover_after=10)
    drive(rate, Cap(50), demand=300, start=0, seconds=5)
    assert rate.limited
    drive(rate, lambda now: True, demand=300, start=5, seconds=12)
    assert not rate.limited


def test_mo_ids_same_content_within_the_window_is_the_same_message():
    ids = MoIds(600)
    key = mo_key("+12065550199", "+12065550100", 0, "ok")
    first = ids.id_for(key, wall=1_000_000.0, now=0.0)
    assert ids.id_for(key, wall=1_000_000.0 + 500, now=500.0) == first
    assert ids.id_for(key, wall=1_000_000.0 + 700, now=700.0) != first  # a new message
    other = mo_key("+12065550199", "+12065550100", 0, "ok", ref=7, total=2)
    assert ids.id_for(other, wall=1_000_000.0, now=0.0) != first


def test_mo_ids_after_a_restart_match_within_the_same_bucket():
    key = mo_key("+12065550199", "+12065550100", 8, "hi 😀")
    before = MoIds(600).id_for(key, wall=600 * 1000 + 10, now=5.0)
    assert MoIds(600).id_for(key, wall=600 * 1000 + 400, now=1.0) == before
    assert MoIds(600).id_for(key, wall=600 * 1001 + 1, now=1.0) != before  # the edge


def test_mo_ids_memory_is_bounded():
    ids = MoIds(600, max_entries=100)
    for i in range(1000):
        ids.id_for(str(i), wall=0.0, now=float(i) / 1000)
    assert len(ids) == 100


def test_addresses():
    assert to_address("+12065550100") == "12065550100"
    assert from_address("12065550100", 1) == "+12065550100"
    assert from_address("12065550100", 0) == "+12065550100"
    assert from_address("2065550100", 2) == "2065550100"  # national: as it came
    assert from_address("INFO", 5) == "INFO"


def gateway_config(environ: dict[str, str] | None = None, **gateway):
    return config_from_dict({"gateway": gateway}, environ=environ or {})


def test_smpp_url_and_options():
    config = gateway_config(url="smpp://intercept:pw%40x@smsc.example:2776", window=50,
                            rate=20, split="sar", submit_timeout="10s")
    settings = smpp_settings(config.gateway)
    assert (settings.host, settings.port, settings.system_id, settings.password) == (
        "smsc.example", 2776, "intercept", "pw@x")
    assert (settings.window, settings.rate, settings.split, settings.submit_timeout) == (
        50, 20.0, "sar", 10.0)
    assert config.gateway.display_url == "smpp://intercept:***@smsc.example:2776"
    gateway = gateway_from_config(config)
    assert isinstance(gateway, SmppGateway) and gateway.max_in_flight == 50


def test_the_password_comes_from_the_environment_or_a_file(tmp_path):
    config = gateway_config({"INTERCEPT_GATEWAY_URL": "smpp://intercept@smsc",
                             "INTERCEPT_GATEWAY_PASSWORD": "fromenv"})
    settings = smpp_settings(config.gateway)
    assert (settings.password, settings.port) == ("fromenv", 2775)
    (tmp_path / "secret").write_text("fromfile\n")
    config = gateway_config(url="smpp://intercept:inurl@smsc", password_file="secret")
    assert smpp_settings(config.gateway, base_dir=tmp_path).password == "fromfile"
    with pytest.raises(ConfigError, match=r"gateway.password_file: cannot read .*missing"):
        smpp_settings(gateway_config(url="smpp://i@smsc", password_file="missing").gateway,
                      base_dir=tmp_path)


@pytest.mark.parametrize(("gateway", "message"), [
    ({"url": "smpp://smsc:2775"}, "gateway: url 'smpp://smsc:2775' should read "
                                  "smpp://SYSTEM_ID:PASSWORD@HOST:PORT"),
    ({"url": "smpp://i:p@smsc:99999"}, "is not a valid URL"),
    ({"url": "smpp://i:p@smsc", "window": 0}, "gateway: window is 0; it must be 1 or more"),
    ({"url": "smpp://i:123456789@smsc"}, "password is 9 characters; SMPP 3.4 allows at most 8"),
    ({"url": "smpp://i:p@smsc", "submit_timeout": "soon"}, "gateway.submit_timeout: expected"),
    ({"url": "smpp://i:p@smsc", "split": "halves"}, "gateway.split"),
    ({"url": "smpp://i:p@smsc", "source_ton": 300}, "source_ton is 300; it must be 0 to 255"),
])
def test_bad_smpp_settings_are_named(gateway, message):
    with pytest.raises(ConfigError) as caught:
        gateway_config(**gateway)
    assert message in str(caught.value)
    assert "123456789" not in str(caught.value)


def test_an_unknown_scheme_is_refused_without_showing_the_password():
    config = gateway_config(url="http://user:secret@example")
    with pytest.raises(ConfigError) as caught:
        gateway_from_config(config)
    assert "unsupported scheme 'http'" in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(("forms", "submitted", "receipted"), [
    ("same", "0A1B2C", "a1b2c"),
    ("same", "000123", "123"),
    ("same", "abc-def", "ABC-DEF"),
    ("submit-hex-receipt-decimal", "3039", "12345"),
    ("submit-hex-receipt-decimal", "0000FF", "0255"),
    ("submit-decimal-receipt-hex", "12345", "3039"),
    ("submit-decimal-receipt-hex", "255", "00ff"),
])
def test_a_receipt_matches_its_submit_in_every_id_form(forms, submitted, receipted):
    from intercept.gateways.smpp.message_ids import receipt_key, submit_key

    assert submit_key(submitted, forms) == receipt_key(receipted, forms)


def test_ids_of_other_messages_do_not_match_and_odd_ids_fall_back():
    from intercept.gateways.smpp.message_ids import receipt_key, submit_key

    assert submit_key("0A1B2C") != receipt_key("a1b2d")
    assert submit_key("10", "submit-hex-receipt-decimal") != receipt_key("10",
                                                                        "submit-hex-receipt-decimal")
    assert submit_key("not-hex", "submit-hex-receipt-decimal") == "not-hex"
    assert submit_key("9" * 500, "submit-decimal-receipt-hex") == "9" * 500  # not read as a number
    assert submit_key("0000") == "0" and submit_key("") == ""
