"""The SMPP client's pure parts: the adaptive send rate, MO ids, addresses, configuration."""

from __future__ import annotations

import pytest

from intercept.config import config_from_dict
from intercept.errors import ConfigError
from intercept.gateways import gateway_from_config, smpp_settings
from intercept.gateways.smpp.client import SmppGateway
from intercept.gateways.smpp.inbound import MoIds, from_address, mo_key, to_address
from intercept.gateways.smpp.ratelimit import SendRate


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


def test_a_throttle_halves_the_rate_once_per_cooldown_and_it_recovers():
    rate = SendRate(100)
    assert rate.throttled(1.0)
    assert rate.rate == 50
    assert not rate.throttled(1.5)  # answers to requests already in flight
    assert rate.rate == 50
    for second in range(3, 30):
        rate.accepted(float(second))
    assert rate.rate == 100  # back to the configured maximum, never above


def test_without_a_limit_a_throttle_starts_from_what_went_out():
    rate = SendRate(None)
    for i in range(400):
        assert rate.delay(i / 400) == 0  # 400 in the last second
    rate.throttled(1.0)
    assert rate.rate == 200
    rate.accepted(1.0 + 31)
    assert rate.rate is None  # quiet for recover_after: the limit is lifted


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
    ({"url": "smpp://i:p@smsc", "submit_timeout": "soon"}, "gateway: submit_timeout: expected"),
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
