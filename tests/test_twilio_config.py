"""twilio:// configuration and the send-slot reservations (pure, no network)."""

from __future__ import annotations

import re

import pytest

from intercept.config import config_from_dict
from intercept.errors import ConfigError
from intercept.gateways import gateway_from_config, twilio_settings
from intercept.gateways.slots import SendSlots
from intercept.gateways.twilio import TwilioGateway

SID = "AC" + "1" * 32


def twilio_config(tmp_path, environ=None, **gateway):
    source = tmp_path / "intercept.toml"
    source.write_text("")
    return config_from_dict({"gateway": {"url": f"twilio://{SID}@api.twilio.com", **gateway}},
                            source=str(source), environ=environ or {})


def test_the_token_comes_from_the_environment_or_a_file(tmp_path):
    config = twilio_config(tmp_path, {"INTERCEPT_GATEWAY_AUTH_TOKEN": "t0ken"})
    settings = twilio_settings(config)
    assert settings.account_sid == SID and settings.auth_token == "t0ken"
    assert settings.api_url == "https://api.twilio.com"
    assert isinstance(gateway_from_config(config), TwilioGateway)
    (tmp_path / "token").write_text("from-file\n")
    assert twilio_settings(twilio_config(tmp_path, auth_token_file="token")).auth_token == (
        "from-file")
    fake = twilio_config(tmp_path, auth_token="x", api_url="http://127.0.0.1:8099",
                         catch_up="2h", request_timeout="5s")
    settings = twilio_settings(fake)
    assert (settings.api_url, settings.catch_up, settings.request_timeout) == (
        "http://127.0.0.1:8099", 7200.0, 5.0)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(
            "INTERCEPT_GATEWAY_AUTH_TOKEN or gateway.auth_token_file")):
        twilio_settings(twilio_config(tmp_path))
    with pytest.raises(ConfigError, match="auth_token_file: cannot read"):
        twilio_settings(twilio_config(tmp_path, auth_token_file="missing"))
    with pytest.raises(ConfigError, match="should read twilio://ACCOUNT_SID@HOST"):
        config_from_dict({"gateway": {"url": "twilio://api.twilio.com"}}, environ={})
    with pytest.raises(ConfigError, match="not in the URL"):
        config_from_dict({"gateway": {"url": f"twilio://{SID}:tok@api.twilio.com"}},
                         environ={})
    with pytest.raises(ConfigError, match=re.escape(
            "public_url 'intercept.org' should be an http")):
        twilio_config(tmp_path, public_url="intercept.org")
    with pytest.raises(ConfigError, match=re.escape("rate_per_number is 0.0")):
        twilio_config(tmp_path, rate_per_number=0)
    with pytest.raises(ConfigError, match=r"unsupported scheme 'nexmo'.*'twilio://'"):
        gateway_from_config(config_from_dict({"gateway": {"url": "nexmo://x"}}, environ={}))


def test_one_number_gets_one_slot_per_second_in_the_order_asked():
    slots = SendSlots(per_number=1.0)
    assert slots.claim("a", "+1", now=100.0) == 0.0
    assert slots.claim("b", "+1", now=100.0) == pytest.approx(1.0)
    assert slots.claim("c", "+1", now=100.2) == pytest.approx(1.8)
    assert slots.claim("x", "+2", now=100.2) == 0.0  # another number is not held up
    # asking again before the reserved time keeps the reservation; at the time it is due
    assert slots.claim("b", "+1", now=100.5) == pytest.approx(0.5)
    assert slots.claim("b", "+1", now=101.0) == 0.0
    assert slots.claim("c", "+1", now=102.0) == 0.0
    assert len(slots) == 0
    assert slots.claim("d", "+1", now=102.1) == pytest.approx(0.9)


def test_the_overall_rate_spaces_every_number():
    slots = SendSlots(per_number=10.0, overall=2.0)
    waits = [slots.claim(str(i), f"+{i}", now=0.0) for i in range(4)]
    assert waits == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_reservations_are_bounded():
    slots = SendSlots(per_number=1.0, max_reservations=3)
    for i in range(10):
        slots.claim(str(i), "+1", now=0.0)
    assert len(slots) == 3
    slots.release("9")
    assert len(slots) == 2


def test_a_numbers_own_rate_replaces_the_default_and_others_keep_it():
    slots = SendSlots(per_number=1.0, rates={"+1b": 4.0})
    assert [slots.claim(f"b{i}", "+1b", 0.0) for i in range(3)] == [0.0, 0.25, 0.5]
    assert [slots.claim(f"a{i}", "+1a", 0.0) for i in range(2)] == [0.0, 1.0]


def test_without_a_default_only_numbers_with_a_rate_wait():
    slots = SendSlots(per_number=None, rates={"+1b": 2.0})
    assert [slots.claim(f"a{i}", "+1a", 0.0) for i in range(5)] == [0.0] * 5
    assert slots.claim("b0", "+1b", 0.0) == 0.0 and slots.claim("b1", "+1b", 0.0) == 0.5
    assert len(slots) == 1  # only the waiting one is reserved
