"""Configuration: the shipped TOML, environment overrides and clear errors."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import msgspec
import pytest

from intercept.config import Campaign, Config, Number, config_from_dict, load_config
from intercept.engine.durations import Duration
from intercept.errors import ConfigError

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "intercept.toml"

MINIMAL = """\
[cities.seattle]
name = "Seattle"
link = "https://help.example/sea"

[[numbers]]
number = "(206) 555-0100"
city = "seattle"
scenario = "buyer-deterrence"
persona = { name = "Jasmine", age = 23 }
"""


def write(tmp_path: Path, text: str, name: str = "intercept.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path, **environ: str) -> Config:
    return load_config(path, environ=environ)


def error(path: Path, **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# The shipped file


def test_the_shipped_config_loads():
    config = load(SHIPPED)
    assert list(config.cities) == ["seattle", "atlanta", "washington-dc"]
    assert config.cities["washington-dc"].name == "Washington DC"
    assert all(c.link.startswith("https://") for c in config.cities.values())
    assert [(n.number, n.city) for n in config.numbers] == [
        ("+12065550100", "seattle"), ("+14045550111", "atlanta"), ("+12025550122", "washington-dc"),
        ("+12065550144", "seattle"),
    ]
    assert {n.scenario for n in config.numbers} == {"buyer-deterrence"}
    assert config.source == str(SHIPPED)
    assert config.scenario_dir == (SHIPPED.parent.parent / "scenarios").resolve()
    assert (config.scenario_dir / "buyer-deterrence.yaml").is_file()


def test_the_shipped_config_values():
    config = load(SHIPPED)
    assert config.gateway.url == "sim://"
    assert config.store.path == "intercept.db"
    assert config.store.synchronous == "normal"
    assert config.http.listen == "127.0.0.1:8080"
    assert config.runtime.max_crashes == 3
    assert config.runtime.hibernate_after == 120
    assert config.delays.enabled is True


def test_lookup_and_context_of_a_number():
    config = load(SHIPPED)
    number = config.number("+14045550111")
    assert number is not None and number.persona.name == "Kayla"
    assert config.number("+19999999999") is None
    assert config.context_for(number) == {
        "persona.name": "Kayla", "persona.age": "21", "persona.style": "casual",
        "city.name": "Atlanta", "city.link": "https://www.sexhelp.com", "city.region": "US",
    }


def test_an_empty_file_gives_the_defaults(tmp_path):
    config = load(write(tmp_path, ""))
    assert config.cities == {} and config.numbers == []
    assert config.store.path == "intercept.db"
    assert config.runtime.inbox_size == 64
    assert config.delays.max == 120 and str(config.delays.max) == "2m"
    assert config.scenario_dir == (tmp_path.parent / "scenarios").resolve()


def test_numbers_are_normalised_to_e164(tmp_path):
    config = load(write(tmp_path, MINIMAL))
    assert config.numbers[0].number == "+12065550100"
    assert config.number("+12065550100") is config.numbers[0]
    assert config.context_for(config.numbers[0])["persona.style"] == ""


# ---------------------------------------------------------------------------------------------
# Environment overrides


def test_environment_overrides_strings(tmp_path):
    config = load(SHIPPED, INTERCEPT_STORE_PATH="/var/lib/intercept/x.db",
                  INTERCEPT_HTTP_LISTEN="0.0.0.0:9000", INTERCEPT_GATEWAY_URL="sim://")
    assert config.store.path == "/var/lib/intercept/x.db"
    assert config.http.listen == "0.0.0.0:9000"


def test_environment_values_are_converted_to_the_key_type():
    config = load(SHIPPED, INTERCEPT_RUNTIME_MAX_CRASHES="5", INTERCEPT_DELAYS_ENABLED="false",
                  INTERCEPT_DELAYS_JITTER="0.1", INTERCEPT_HTTP_ENABLED="0",
                  INTERCEPT_RUNTIME_HIBERNATE_AFTER="5m")
    assert config.runtime.max_crashes == 5
    assert config.delays.enabled is False
    assert config.delays.jitter == 0.1
    assert config.http.enabled is False
    assert config.runtime.hibernate_after == 300


def test_environment_overrides_a_section_missing_from_the_file(tmp_path):
    config = load(write(tmp_path, MINIMAL), INTERCEPT_STORE_SYNCHRONOUS="full")
    assert config.store.synchronous == "full"


def test_other_environment_variables_are_ignored():
    config = load(SHIPPED, INTERCEPT_CONFIG="/elsewhere.toml", INTERCEPT_NOPE_X="1",
                  STORE_PATH="x", PATH="/bin")
    assert config.store.path == "intercept.db"


def test_environ_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("INTERCEPT_STORE_PATH", "from-env.db")
    assert load_config(SHIPPED).store.path == "from-env.db"


def test_a_bad_environment_value_names_the_variable():
    message = error(SHIPPED, INTERCEPT_RUNTIME_MAX_CRASHES="lots")
    assert message == (f"{SHIPPED}: runtime.max_crashes: expected 'int', got 'str' "
                       "(set by the environment variable INTERCEPT_RUNTIME_MAX_CRASHES)")
    message = error(SHIPPED, INTERCEPT_STORE_PAHT="x.db")
    assert message == (f"{SHIPPED}: store.paht: unknown field 'paht' "
                       "(set by the environment variable INTERCEPT_STORE_PAHT)")
    message = error(SHIPPED, INTERCEPT_DELAYS_MAX="forever")
    assert message.startswith(f"{SHIPPED}: delays.max: expected a duration")
    assert message.endswith("(set by the environment variable INTERCEPT_DELAYS_MAX)")


# ---------------------------------------------------------------------------------------------
# Errors name the file and the key


def test_unknown_key(tmp_path):
    path = write(tmp_path, "[store]\npaht = 'x.db'\n")
    assert error(path) == f"{path}: store.paht: unknown field 'paht'"


def test_unknown_section(tmp_path):
    path = write(tmp_path, "[stor]\npath = 'x.db'\n")
    assert error(path) == f"{path}: stor: unknown field 'stor'"


def test_unknown_key_in_a_persona(tmp_path):
    path = write(tmp_path, MINIMAL.replace("age = 23", "agee = 23"))
    assert error(path) == f"{path}: numbers[0].persona.agee: unknown field 'agee'"


@pytest.mark.parametrize(("toml", "expected"), [
    ("[runtime]\ninbox_size = 'big'\n", "runtime.inbox_size: expected 'int', got 'str'"),
    ("[runtime]\ninbox_size = 1.5\n", "runtime.inbox_size: expected 'int', got 'float'"),
    ("[http]\nenabled = 'sometimes'\n", "http.enabled: expected 'bool', got 'str'"),
    ("[store]\nsynchronous = 'off'\n", "store.synchronous: invalid enum value 'off'"),
    ("[runtime]\nhibernate_after = 120\n", "runtime.hibernate_after: expected 'str', got 'int'"),
    ("store = 'x'\n", "store: expected 'object', got 'str'"),
])
def test_wrong_type(tmp_path, toml, expected):
    path = write(tmp_path, toml)
    assert error(path) == f"{path}: {expected}"


def test_missing_required_key(tmp_path):
    path = write(tmp_path, MINIMAL.replace('link = "https://help.example/sea"\n', ""))
    assert error(path) == f"{path}: cities.seattle: missing required field 'link'"


def test_unknown_city(tmp_path):
    path = write(tmp_path, MINIMAL.replace('city = "seattle"', 'city = "seatle"'))
    assert error(path) == (f"{path}: numbers[0].city: unknown city 'seatle'; defined cities: "
                           "seattle")


def test_invalid_phone_number(tmp_path):
    path = write(tmp_path, MINIMAL.replace("(206) 555-0100", "555-01"))
    assert error(path) == f"{path}: numbers[0].number: '555-01' is not a valid phone number"


def test_duplicate_number(tmp_path):
    second = MINIMAL.split("\n\n", 1)[1].replace("(206) 555-0100", "+1 206 555 0100")
    path = write(tmp_path, MINIMAL + "\n" + second)
    assert error(path) == (f"{path}: numbers[1].number: '+1 206 555 0100' is listed twice "
                           "(also numbers[0])")


@pytest.mark.parametrize(("section", "key"), [
    ("runtime", "hibernate_after"), ("runtime", "shutdown_grace"), ("delays", "think"),
    ("delays", "min"), ("delays", "max"),
])
def test_bad_duration(tmp_path, section, key):
    path = write(tmp_path, f"[{section}]\n{key} = '2 weeks'\n")
    assert error(path) == (f"{path}: {section}.{key}: expected a duration like '15s', '20m' or "
                           "'1h30m', got '2 weeks'")


def test_every_problem_is_reported_at_once(tmp_path):
    text = MINIMAL.replace('city = "seattle"', 'city = "x"') + "[delays]\nthink = 'soon'\n"
    second = "\n[[numbers]]\nnumber = 'nope'\ncity = 'seattle'\nscenario = 's'\n" \
             "persona = { name = 'A' }\n"
    path = write(tmp_path, text + second)
    lines = error(path).splitlines()
    assert lines == [
        f"{path}: delays.think: expected a duration like '15s', '20m' or '1h30m', got 'soon'",
        f"{path}: numbers[0].city: unknown city 'x'; defined cities: seattle",
        f"{path}: numbers[1].number: 'nope' is not a valid phone number",
    ]


def test_durations_are_decoded_once_into_seconds_that_keep_their_text(tmp_path):
    config = load(write(tmp_path, "[runtime]\nhibernate_after = '1h30m'\n"
                                  "[retention]\nbuyer_after = '180d'\n"),
                  INTERCEPT_HEALTH_WINDOW="12h")
    hibernate = config.runtime.hibernate_after
    assert isinstance(hibernate, Duration)
    assert (hibernate, str(hibernate), repr(hibernate)) == (5400.0, "1h30m", "Duration('1h30m')")
    assert (config.health.window, str(config.health.window)) == (43200.0, "12h")
    assert (config.retention.buyer_after, str(config.retention.buyer_after)) == (180 * 86400,
                                                                                "180d")
    assert not config.retention.outreach_after and str(config.retention.outreach_after) == ""
    assert config.gateway.reconnect_max - config.gateway.reconnect_min == 59.0
    assert pickle.loads(pickle.dumps(hibernate)).text == "1h30m"


def test_every_bad_duration_is_reported_with_the_other_problems(tmp_path):
    text = (MINIMAL.replace('city = "seattle"', 'city = "x"')
            + "[gateway]\nsubmit_timeout = 'a while'\n[delays]\nthink = 'soon'\n"
            + "\n[[campaigns]]\nname = 'c'\ncity = 'x'\nnumbers = []\n"
            + "contact_again_after = 'never'\n")
    path = write(tmp_path, text)
    lines = error(path, INTERCEPT_API_LOCKOUT="1 hour").splitlines()
    expected = "expected a duration like '15s', '20m' or '1h30m', got"
    assert lines[:4] == [
        f"{path}: gateway.submit_timeout: {expected} 'a while'",
        f"{path}: api.lockout: {expected} '1 hour' (set by the environment variable "
        "INTERCEPT_API_LOCKOUT)",
        f"{path}: delays.think: {expected} 'soon'",
        f"{path}: campaigns[0].contact_again_after: {expected} 'never'",
    ]
    assert f"{path}: numbers[0].city: unknown city 'x'; defined cities: seattle" in lines


@pytest.mark.parametrize(("raw", "message"), [
    ({"store": {"backup_every": "0s"}}, "store: backup_every: '0s' is less than a minute"),
    ({"runtime": {"collector_sweep": "30s"}},
     "runtime: collector_sweep: '30s' is less than a minute"),
    ({"retention": {"buyer_after": "0s"}}, "retention.buyer_after: '0s' is less than a day"),
    ({"store": {"backup_every": 60}}, "store.backup_every: expected 'str', got 'int'"),
])
def test_a_zero_duration_is_not_mistaken_for_an_empty_one(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(raw, environ={})


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[store\npath = 'x'\n")
    message = error(path)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 1" in message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    assert error(path) == f"{path}: cannot read the config file: No such file or directory"


def test_an_error_in_a_city_names_the_city(tmp_path):
    path = write(tmp_path, MINIMAL.replace('name = "Seattle"', 'name = "Seattle"\nregon = "US"'))
    assert error(path) == f"{path}: cities.seattle.regon: unknown field 'regon'"
    path = write(tmp_path, "cities = { seattle = 'x' }\n")
    assert error(path) == f"{path}: cities.seattle: expected 'object', got 'str'"


# ---------------------------------------------------------------------------------------------
# docs/configuration.md lists every key with its real default


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Duration):  # a duration is written as a string: "30s"
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


@pytest.mark.parametrize("section", ["gateway", "store", "http", "runtime", "delays",
                                     "scenarios", "media", "lookups", "retention", "api",
                                     "evidence", "health"])
def test_the_configuration_reference_documents_every_key(section):
    doc = (SHIPPED.parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    heading = f"## `[{section}]`"
    assert heading in doc
    part = doc.split(heading, 1)[1].split("\n## ", 1)[0]
    struct = type(getattr(Config(), section))
    for field in msgspec.structs.fields(struct):
        default = (field.default_factory() if field.default is msgspec.NODEFAULT
                   else field.default)
        row = f"| `{field.name}` | `{_toml(default)}` |"
        assert row in part, f"docs/configuration.md [{section}] lacks {row}"


@pytest.mark.parametrize(("heading", "struct"), [("## `[[campaigns]]`", Campaign),
                                                 ("## `[[numbers]]`", Number)])
def test_the_configuration_reference_documents_every_list_key(heading, struct):
    doc = (SHIPPED.parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert heading in doc
    part = doc.split(heading, 1)[1].split("\n## ", 1)[0]
    for field in msgspec.structs.fields(struct):
        if field.required:
            row = f"| `{field.name}` | *required* |"
            if field.name == "persona":
                row = "| `persona.name` | *required* |"
        else:
            default = (field.default_factory() if field.default is msgspec.NODEFAULT
                       else field.default)
            row = f"| `{field.name}` | `{_toml(default)}` |"
        assert row in part, f"docs/configuration.md {heading} lacks {row}"


# ---------------------------------------------------------------------------------------------
# Victim outreach: number kinds and [[campaigns]]


def test_the_shipped_outreach_example_is_off_and_loads_when_uncommented(tmp_path):
    text = SHIPPED.read_text(encoding="utf-8")
    assert load(SHIPPED).campaigns == []
    head, example = text.split("# Victim outreach", 1)
    lines = example.splitlines()[3:]
    assert all(line.startswith("#") for line in lines if line.strip())
    enabled = head + "\n".join(line.removeprefix("# ").removeprefix("#") for line in lines)
    path = write(tmp_path, enabled.replace('dir = "../scenarios"',
                                           f'dir = "{SHIPPED.parent.parent / "scenarios"}"'))
    config = load(path)
    (campaign,) = config.campaigns
    assert (campaign.name, campaign.city, campaign.numbers, campaign.scenario) == (
        "seattle-outreach", "seattle", ["+12065550130"], "victim-outreach")
    assert config.number("+12065550130").kind == "outreach"
    assert {n.kind for n in config.numbers if n.number != "+12065550130"} == {"buyer"}


def test_campaign_defaults_and_normalised_numbers(tmp_path):
    path = write(tmp_path, MINIMAL.replace('persona = { name = "Jasmine", age = 23 }',
                                           'kind = "outreach"\npersona = { name = "Jasmine" }')
                 + '\n[[campaigns]]\nname = "c1"\ncity = "seattle"\n'
                   'numbers = ["(206) 555-0100"]\n')
    (campaign,) = load(path).campaigns
    assert campaign.numbers == ["+12065550100"]
    assert campaign.scenario == "buyer-deterrence"  # the numbers' scenario
    assert (campaign.window, campaign.rate_per_number, campaign.rate,
            str(campaign.contact_again_after), campaign.variants) == (
        "09:00-20:00", "1/m", "10/m", "90d", [])
    assert campaign.contact_again_after == 90 * 86400


def test_a_campaign_from_a_buyer_number_is_refused(tmp_path):
    path = write(tmp_path, MINIMAL + '\n[[campaigns]]\nname = "c1"\ncity = "seattle"\n'
                                     'numbers = ["+12065550100"]\nwindow = "9-5"\n')
    assert error(path).splitlines() == [
        f'{path}: campaigns[0].numbers[0]: +12065550100 is a buyer number; give it kind = '
        '"outreach" in [[numbers]] (buyer numbers never text victims)',
        f"{path}: campaigns[0].window: expected a window like '09:00-20:00', got '9-5'"]
    path = write(tmp_path, MINIMAL.replace("persona", 'kind = "victim"\npersona'))
    assert error(path) == f"{path}: numbers[0].kind: invalid enum value 'victim'"


@pytest.mark.parametrize(("health", "message"), [
    ({"interval": "0s"}, "health: interval is '0s'; use at least 1s"),
    ({"interval": "500ms"}, "health: interval is '500ms'; use at least 1s"),
    ({"min_messages": 0}, "health: min_messages is 0; use 1 or more"),
    ({"pause_share": 1.5}, "health.pause_share"),
])
def test_number_health_settings_that_would_spin_or_mislead_are_refused(health, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict({"health": health}, environ={})


def test_a_retention_interval_under_a_minute_is_refused():
    with pytest.raises(ConfigError, match=re.escape("retention: interval is '0s'; use at least")):
        config_from_dict({"retention": {"buyer_after": "200d", "interval": "0s"}}, environ={})
