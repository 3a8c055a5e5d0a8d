"""docs/scenarios.md stays true: every YAML example compiles (or fails as documented), every
transcript test passes, every `intercept scenario` console session prints what the doc shows,
and the Python example runs.

Fences: ```yaml is a complete scenario; ```yaml file=PATH is written to PATH (a scenario, a
library or a transcript test file); ```yaml file=PATH broken must be refused by check or lint.
Console sessions run in a folder holding a copy of scenarios/ plus those files.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from intercept.authoring.transcripts import load_suite, report, run_suite
from intercept.cli import main
from intercept.engine import compile_text, load_scenario
from intercept.errors import ScenarioError

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.S | re.M)
BLOCKS = [(m.group(1), m.group(2).split(), m.group(3), DOC[:m.start()].count("\n") + 1)
          for m in FENCE.finditer(DOC)]
YAML = [(info, text, line) for kind, info, text, line in BLOCKS if kind == "yaml"]
FILES = {dict(i.split("=", 1) for i in info if "=" in i)["file"]: (text, "broken" in info)
         for info, text, _ in YAML if any(i.startswith("file=") for i in info)}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A copy of scenarios/ and the schema, plus every file the doc writes; the cwd."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "scenario.schema.json", tmp_path / "docs")
    for name, (text, _) in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_doc_has_examples_of_every_construct():
    text = "\n".join(t for _, t, _ in YAML)
    for construct in ["keywords:", "all:", "phrase:", "fuzzy:", "regex:", "number:", "answer:",
                      "has: media", "has: phone", "has: url", "intent:", "otherwise:", "if:",
                      "then:", "else:", "split:", "visits:", "handoff:", "lookup:",
                      "on_lookup:", "timeout:", "globals:", "priority:", "return: true",
                      "stay: true", "skip_globals:", "include:", "intents:", "merge:", "delay:",
                      "busy:", "expire:", "capture:", "tag:", "set:", "end:", "goto:",
                      "scenario:", "seeds:", "wait:", "media:", "after:", "vars:", "effects:"]:
        assert construct in text, f"no example uses {construct}"


@pytest.mark.parametrize(("info", "text", "line"), [b for b in YAML if not b[0]],
                         ids=lambda v: f"line {v}" if isinstance(v, int) else "")
def test_every_plain_example_compiles(folder, info, text, line):
    path = folder / "scenarios" / f"example-{line}.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_scenario(path)
    except ScenarioError as exc:
        pytest.fail(f"docs/scenarios.md:{line}: the example does not compile:\n{exc}")


@pytest.mark.parametrize("name", list(FILES))
def test_every_file_example_compiles_runs_or_fails_as_documented(folder, name):
    text, broken = FILES[name]
    path = folder / name
    if "\ntests:" in f"\n{text}":
        suite = load_suite(path)
        outcome = run_suite(suite)
        assert outcome.ok, "\n".join(report(r, name) for r in outcome.results if not r.ok)
        assert outcome.unvisited == []
        return
    if "\nname:" not in f"\n{text}":  # a library: compiled through the files that include it
        return
    if not broken:
        load_scenario(path)
        return
    from intercept.authoring.lint import lint_file

    assert any(f.severity == "error" for f in lint_file(path))


def _sessions():
    for kind, _, text, line in BLOCKS:
        if kind == "console":
            yield pytest.param(text, id=f"line {line}")


def _run(command: str) -> tuple[list[str], int]:
    args = command.split()[1:]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    return result.output.splitlines(), result.exit_code


def _normal(line: str) -> str:
    return re.sub(r" in \d+ ms$", " in N ms", line)


@pytest.mark.parametrize("text", list(_sessions()))
def test_every_console_session_prints_what_the_doc_shows(folder, text):
    lines = text.splitlines()
    i = 0
    exit_code = 0
    while i < len(lines):
        command = lines[i]
        assert command.startswith("$ "), command
        expected = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        if command == "$ echo $?":
            assert expected == [str(exit_code)]
            continue
        output, exit_code = _run(command[2:])
        assert [_normal(x) for x in output] == [_normal(x) for x in expected], command


def test_the_documented_failure_report_is_what_a_failure_prints(folder):
    example = next(t for kind, _, t, _ in BLOCKS if kind == "text" and t.startswith("FAIL "))
    path = folder / "scenarios" / "tests" / "hello.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "bot: [/Jasmine|hi!/, ...]", "bot: [/Jasmine/]"), encoding="utf-8")
    outcome = run_suite(load_suite(path))
    failed = [r for r in outcome.results if not r.ok]
    assert report(failed[0], "scenarios/tests/hello.yaml") + "\n" == example


def test_the_documented_python_example_runs(folder, capsys):
    code = next(t for kind, _, t, _ in BLOCKS if kind == "python")
    exec(code, {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == "nudge_greet"


def test_the_documented_schema_line_is_the_one_the_shipped_files_use():
    line = next(t for kind, _, t, _ in BLOCKS if kind == "text" and "$schema" in t).strip()
    assert (ROOT / "scenarios" / "buyer-deterrence.yaml").read_text(
        encoding="utf-8").startswith(line + "\n")


def test_compile_text_accepts_every_plain_example_without_includes():
    for info, text, line in YAML:
        if not info and "include:" not in text:
            compile_text(text, file=f"docs/scenarios.md:{line}")
