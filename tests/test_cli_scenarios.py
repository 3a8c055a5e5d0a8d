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
    assert result.stdout.startswith(f"{SHIPPED_SCENARIO}: ok (buyer-deterrence v1, ")
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
# numbers


def test_numbers_lists_the_shipped_numbers():
    result = run("numbers", "--config", str(SHIPPED_CONFIG))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["+12065550100", "Seattle", "Jasmine", "buyer-deterrence"]
    assert lines[2].split() == ["+12025550122", "Washington", "DC", "Mia", "buyer-deterrence"]


def test_numbers_json():
    result = run("numbers", "--config", str(SHIPPED_CONFIG), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[1] == {"number": "+14045550111", "city": "atlanta", "city_name": "Atlanta",
                       "scenario": "buyer-deterrence",
                       "persona": {"name": "Kayla", "age": 21, "style": "casual"}}
    assert [r["number"] for r in rows] == ["+12065550100", "+14045550111", "+12025550122"]


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


# ---------------------------------------------------------------------------------------------
# docs/scenarios.md stays true


DOC = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC, re.S)


def test_the_documented_example_scenario_checks_ok(tmp_path):
    example = next(b for b in _blocks("yaml") if b.startswith("name: hello"))
    path = tmp_path / "hello.yaml"
    path.write_text(example, encoding="utf-8")
    result = run("scenario", "check", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: ok (hello v1, 5 states)\n"


def test_the_documented_broken_example_gives_the_documented_output(tmp_path, monkeypatch):
    broken = [b for b in _blocks("yaml") if b.startswith("name: hello")][1]
    console = next(b for b in _blocks("console") if "scenarios/hello.yaml" in b)
    expected = [line for line in console.splitlines()
                if line.startswith("scenarios/hello.yaml:")]
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "hello.yaml").write_text(broken, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = run("scenario", "check", "scenarios/hello.yaml")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == expected


def test_the_documented_shipped_check_output(monkeypatch):
    console = _blocks("console")[0].splitlines()
    assert console[0] == "$ intercept scenario check scenarios/buyer-deterrence.yaml"
    monkeypatch.chdir(ROOT)
    result = run("scenario", "check", "scenarios/buyer-deterrence.yaml")
    assert result.stdout.splitlines() == console[1:]


def test_the_documented_python_example_runs(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    exec(_blocks("python")[0], {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "nudge_greet"
