"""The `scenario check` and `numbers` commands, and every command's help, through CliRunner."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from intercept.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SCENARIO = ROOT / "scenarios" / "buyer-deterrence.yaml"
SHIPPED_CONFIG = ROOT / "config" / "intercept.toml"

BROKEN = """\
name: broken
version: 1
start: hello
states:
  hello:
    say: "hi {persona.nam}"
    expect:
      - keywords: [hi]
        goto: byee
  bye:
    end: done
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("INTERCEPT_"):
            monkeypatch.delenv(name)


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# ---------------------------------------------------------------------------------------------
# scenario check


def test_check_the_shipped_scenario():
    result = run("scenario", "check", str(SHIPPED_SCENARIO))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{SHIPPED_SCENARIO}: ok (buyer-deterrence v3, ")
    assert result.stderr == ""


def test_check_a_broken_scenario_prints_every_error_and_exits_1(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = run("scenario", "check", str(path))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:6:10: states.hello.say: unknown placeholder "
                               "{persona.nam}: known are ")
    assert lines[1:] == [
        f"{path}:8:7: states.hello.expect: no 'otherwise' entry: a reply that matches nothing "
        "would get no answer",
        f"{path}:9:15: states.hello.expect[0].goto: unknown state 'byee' (did you mean 'bye'?)",
    ]
    assert "ok" not in result.stdout


def test_check_a_yaml_syntax_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstates: [a\n", encoding="utf-8")
    result = run("scenario", "check", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3:1: YAML syntax error: ")


def test_check_several_files_reports_each_and_fails_if_any_fails(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    result = run("scenario", "check", str(SHIPPED_SCENARIO), str(broken))
    assert result.exit_code == 1
    assert f"{SHIPPED_SCENARIO}: ok" in result.stdout
    assert f"{broken}:6:10:" in result.stderr


def test_check_needs_an_existing_file(tmp_path):
    result = run("scenario", "check", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


# ---------------------------------------------------------------------------------------------
# scenario lint, graph, schema, test


SHIPPED = sorted(str(p) for p in (ROOT / "scenarios").glob("*.yaml"))
LOOPING = """\
name: looping
version: 1
start: a
states:
  a:
    say: "again"
    expect:
      - otherwise: true
        goto: b
  b:
    say: "and again"
    expect:
      - otherwise: true
        goto: a
"""


def test_lint_the_shipped_scenarios_is_clean_even_strict():
    result = run("scenario", "lint", "--strict", *SHIPPED)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{path}: ok" for path in SHIPPED]


def test_lint_rejects_a_loop_and_a_missing_state_with_their_lines(tmp_path):
    looping = tmp_path / "looping.yaml"
    looping.write_text(LOOPING, encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    result = run("scenario", "lint", str(looping), str(broken))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"{looping}:6:5: error: states.a: loop without an exit: a -> b -> a never reaches " \
           "an end, a hand-off or an expiry, so the conversation could never finish" in lines
    assert f"{broken}:9:15: error: states.hello.expect[0].goto: unknown state 'byee' (did you " \
           "mean 'bye'?)" in lines
    assert f"{looping}:6:5: warning: states.a: the start state 'a' says something and then " \
           "waits: the buyer's first text comes with the start, so it is read against the " \
           "answers to this greeting and mostly falls through to 'otherwise'; leave the start " \
           "state silent (route the first text from it, e.g. '- otherwise: true' with 'goto' a " \
           "state that greets), or, if a campaign starts this scenario, lint it with --config " \
           "naming its outreach numbers or campaigns" in lines
    assert result.stderr == "4 errors, 2 warnings\n"


def test_lint_warnings_fail_only_with_strict(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nversion: 1\nstart: a\nstates:\n  a:\n    end: done\n",
                    encoding="utf-8")
    result = run("scenario", "lint", str(path))
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{path}:1:1: warning: no global handler opts the sender out")
    assert result.stderr == "0 errors, 1 warning\n"
    assert run("scenario", "lint", "--strict", str(path)).exit_code == 1


def test_lint_lets_the_scenarios_of_outreach_numbers_greet_first(tmp_path):
    greeter = tmp_path / "greeter.yaml"
    greeter.write_text(
        "name: greeter\nversion: 1\nstart: a\nglobals:\n  - name: stop\n    keywords: [stop]\n"
        "    opt_out: ok\n    return: true\nstates:\n  a:\n    say: hi\n    expect:\n"
        "      - otherwise: true\n        goto: z\n  z:\n    end: done\n", encoding="utf-8")
    result = run("scenario", "lint", "--strict", str(greeter))
    assert result.exit_code == 1
    assert "the start state 'a' says something and then waits" in result.stdout
    config = tmp_path / "intercept.toml"
    config.write_text(
        '[cities.seattle]\nname = "Seattle"\nlink = "https://help.example/sea"\n\n'
        '[[numbers]]\nnumber = "+12065550100"\ncity = "seattle"\nscenario = "greeter"\n'
        'kind = "outreach"\npersona = {name = "Ana"}\n', encoding="utf-8")
    result = run("scenario", "lint", "--strict", "--config", str(config), str(greeter))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{greeter}: ok\n"


@pytest.mark.parametrize(("fmt", "start"), [("mermaid", "flowchart TD\n"),
                                            ("dot", 'digraph "victim-outreach" {\n')])
def test_graph(fmt, start):
    result = run("scenario", "graph", "--format", fmt,
                 str(ROOT / "scenarios" / "victim-outreach.yaml"))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(start)
    assert "after_advocate" in result.stdout


def test_graph_of_a_broken_scenario(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = run("scenario", "graph", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:6:10: ")


def test_schema_prints_the_shipped_schema(tmp_path):
    shipped = (ROOT / "docs" / "scenario.schema.json").read_text(encoding="utf-8")
    assert run("scenario", "schema").stdout == shipped
    result = run("scenario", "schema", "-o", str(tmp_path / "s.json"))
    assert result.stdout == f"wrote {tmp_path / 's.json'}\n"
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == shipped


def test_test_runs_the_shipped_transcripts_with_full_coverage():
    result = run("scenario", "test", "--coverage", str(ROOT / "scenarios" / "tests"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(list((ROOT / "scenarios" / "tests").glob("*.yaml")))  # en and es
    for line in lines:
        assert re.search(r": (\d+)/\1 passed \(.* v\d+\); states visited (\d+)/\2$", line), line
    assert re.fullmatch(r"(\d+)/\1 passed in \d+ ms\n", result.stderr)


def test_test_reports_a_failure_and_exits_1(tmp_path):
    (tmp_path / "looping.yaml").write_text(LOOPING, encoding="utf-8")
    tests = tmp_path / "t.yaml"
    tests.write_text("scenario: looping.yaml\ntests:\n  - name: says again\n    steps:\n"
                     "      - bot: again\n      - them: hi\n        bot: again\n",
                     encoding="utf-8")
    result = run("scenario", "test", str(tests))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"FAIL {tests}:7: says again\n  step: bot: 'again'\n"
                                    "  expected the bot to say\n        again\n"
                                    "      but it said\n        and again\n")
    assert f"{tests}: 0/1 passed (looping v1); states visited 2/2" in result.stdout
    verbose = run("scenario", "test", "-v", "-k", "nothing", str(tests))
    assert verbose.exit_code == 0
    assert "0/0 passed" in verbose.stdout


def test_test_coverage_fails_when_a_state_is_never_visited(tmp_path):
    (tmp_path / "looping.yaml").write_text(LOOPING, encoding="utf-8")
    tests = tmp_path / "t.yaml"
    tests.write_text("scenario: looping.yaml\ntests:\n  - name: start\n    steps:\n"
                     "      - state: a\n", encoding="utf-8")
    assert run("scenario", "test", str(tests)).exit_code == 0
    result = run("scenario", "test", "--coverage", str(tests))
    assert result.exit_code == 1
    assert "states visited 1/2, not visited: b" in result.stdout


def test_test_with_a_broken_test_file(tmp_path):
    tests = tmp_path / "t.yaml"
    tests.write_text("scenario: nowhere.yaml\ntests: []\n", encoding="utf-8")
    result = run("scenario", "test", str(tests))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{tests}:1:11: scenario: the scenario does not compile")


# ---------------------------------------------------------------------------------------------
# numbers


def test_numbers_lists_the_shipped_numbers():
    result = run("numbers", "--config", str(SHIPPED_CONFIG))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["+12065550100", "Seattle", "Jasmine", "buyer-deterrence",
                                "buyer", "no", "limit", "(simulator)"]
    assert lines[2].split() == ["+12025550122", "Washington", "DC", "Mia", "buyer-deterrence",
                                "buyer", "no", "limit", "(simulator)"]
    assert lines[3].split() == ["+12065550144", "Seattle", "Sofia", "buyer-deterrence",
                                "buyer", "no", "limit", "(simulator)"]


def test_numbers_json():
    result = run("numbers", "--config", str(SHIPPED_CONFIG), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[1] == {"number": "+14045550111", "city": "atlanta", "city_name": "Atlanta",
                       "scenario": "buyer-deterrence", "kind": "buyer",
                       "persona": {"name": "Kayla", "age": 21, "style": "casual"},
                       "rate": None, "rate_source": "simulator"}
    assert [r["number"] for r in rows] == ["+12065550100", "+14045550111", "+12025550122",
                                           "+12065550144"]


def test_numbers_shows_normalised_numbers_from_any_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[cities.x]\nname = "X Town"\nlink = "https://x.example"\n'
                    '[[numbers]]\nnumber = "206.555.0199"\ncity = "x"\nscenario = "s"\n'
                    'persona = { name = "Ana" }\n', encoding="utf-8")
    result = run("numbers", "--config", str(path), "--json")
    assert json.loads(result.stdout)["number"] == "+12065550199"
    assert json.loads(result.stdout)["persona"] == {"name": "Ana", "age": None, "style": ""}


def test_numbers_config_from_the_environment(monkeypatch, tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("", encoding="utf-8")
    monkeypatch.setenv("INTERCEPT_CONFIG", str(path))
    result = run("numbers")
    assert result.exit_code == 0
    assert result.stdout == ""


def test_numbers_with_a_broken_config_explains_and_exits_1(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[store]\npaht = 'x'\n", encoding="utf-8")
    result = run("numbers", "--config", str(path))
    assert result.exit_code == 1
    assert f"{path}: store.paht: unknown field 'paht'" in result.stderr


# ---------------------------------------------------------------------------------------------
# Help


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield (*prefix, name)
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMANDS = list(_commands(main))


def test_the_commands_are_found():
    assert {("numbers",), ("scenario", "check"), ("serve",), ("chat",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "intercept")
def test_every_command_help_has_an_example(path):
    result = run(*path, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout
    if path:
        assert f"intercept {' '.join(path)}" in result.stdout  # the example runs this command
