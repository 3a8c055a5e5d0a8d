"""The JSON Schema for scenario files: shipped up to date, and it accepts exactly the format.

A small validator for the subset of JSON Schema the schema uses stands in for an editor's
(yaml-language-server's) validation.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from intercept.authoring.schema import (
    scenario_schema,
    schema_text,
    transcript_schema,
    transcript_schema_text,
)
from intercept.authoring.transcripts import CHECKS, EVENTS, MODIFIERS, StepSpec
from intercept.engine.durations import parse_duration
from intercept.engine.yamlsource import load_located

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "docs" / "scenario.schema.json"
SCHEMA = scenario_schema()
TRANSCRIPT_SCHEMA = transcript_schema()
SHIPPED_TRANSCRIPT = ROOT / "docs" / "transcript.schema.json"
TRANSCRIPT_FILES = sorted((ROOT / "scenarios" / "tests").glob("*.yaml"))
SCENARIO_FILES = sorted((ROOT / "scenarios").rglob("*.yaml"))


def problems(value: Any, schema: dict[str, Any], where: str = "$",
             root: dict[str, Any] = SCHEMA) -> list[str]:
    """Where `value` breaks `schema` (types, properties, items, anyOf, enum, $ref, bounds,
    patterns); `$ref`s point into `root`."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        found = problems(value, root["$defs"][name], where, root)
        rest = {k: v for k, v in schema.items() if k not in ("$ref", "$defs", "$schema",
                                                              "title", "description")}
        return found + (problems(value, rest, where, root) if rest else [])
    if "anyOf" in schema:
        if all(problems(value, option, where, root) for option in schema["anyOf"]):
            return [f"{where}: matches none of {len(schema['anyOf'])} options"]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return problems(value, rest, where, root) if rest else []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: not one of {schema['enum']}"]
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool,
             "integer": int, "number": (int, float), "null": type(None)}
    if kind is not None:
        if isinstance(value, bool) and kind in ("integer", "number"):
            return [f"{where}: expected {kind}"]
        if not isinstance(value, types[kind]):
            return [f"{where}: expected {kind}, got {type(value).__name__}"]
    out: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{where}: missing {key}")
        names = schema.get("propertyNames")
        for key, item in value.items():
            if names and not re.fullmatch(names["pattern"].strip("^$"), key):
                out.append(f"{where}.{key}: bad name")
            if key in properties:
                out += problems(item, properties[key], f"{where}.{key}", root)
            elif isinstance(schema.get("additionalProperties"), dict):
                out += problems(item, schema["additionalProperties"], f"{where}.{key}", root)
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: unknown key {key!r}")
    if isinstance(value, str) and "pattern" in schema:
        # the schema's patterns use only what JavaScript and Python regexes read alike, but
        # for '$': the end of the text in JavaScript, before a last newline too in Python
        pattern = re.sub(r"\$$", r"\\Z", schema["pattern"])
        if not re.search(pattern, value):
            out.append(f"{where}: does not match {schema['pattern']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += problems(item, schema["items"], f"{where}[{i}]", root)
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, ok in (("minimum", value >= schema.get("minimum", value)),
                        ("maximum", value <= schema.get("maximum", value)),
                        ("exclusiveMinimum", value > schema.get("exclusiveMinimum",
                                                                value - 1))):
            if key in schema and not ok:
                out.append(f"{where}: {key} {schema[key]}")
    return out


def test_the_shipped_schema_is_up_to_date():
    assert SHIPPED.read_text(encoding="utf-8") == schema_text(), (
        "regenerate it: intercept scenario schema -o docs/scenario.schema.json")


def test_the_schema_is_json_schema_2020_12_with_descriptions():
    data = json.loads(schema_text())
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    state = data["$defs"]["State"]
    assert state["additionalProperties"] is False
    assert {"say", "expect", "timeout", "goto", "if", "then", "else", "split", "handoff", "end",
            "visits", "merge", "delay", "busy", "skip_globals"} <= set(state["properties"])
    reply = data["$defs"]["Reply"]["properties"]
    assert {"keywords", "all", "phrase", "fuzzy", "regex", "number", "answer", "has", "intent",
            "otherwise", "return", "stay", "capture", "opt_out"} <= set(reply)
    assert "description" in reply["fuzzy"]
    assert "null" not in schema_text()  # YAML authors leave keys out; no null alternatives


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_yaml_that_is_a_scenario_matches_the_schema(path):
    # read as editors do (YAML 1.2: yes and no are words), like the scenario loader
    data = load_located(path.read_text(encoding="utf-8"), str(path)).data
    if "tests" in data:  # a transcript test file
        return
    assert problems(data, SCHEMA) == []


@pytest.mark.parametrize("path", [p for p in SCENARIO_FILES if "tests" not in p.parts],
                         ids=lambda p: p.name)
def test_scenario_files_point_editors_at_the_schema(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, f"{path} should start with the yaml-language-server line"
    assert (path.parent / match.group(1)).resolve() == SHIPPED


@pytest.mark.parametrize(("data", "problem"), [
    ({"name": "x", "states": {"a": {"sya": "hi"}}}, "unknown key 'sya'"),
    ({"name": "x", "states": {"1st": {"end": "x"}}}, "bad name"),
    ({"name": "x", "version": "one"}, "expected integer"),
    ({"states": {"a": {"expect": [{"keywords": "hi"}]}}}, "keywords: expected array"),
    ({"states": {"a": {"busy": {"chance": 2, "min": 1, "max": 2}}}}, "maximum"),
    ({"states": {"a": {"timeout": {"after": "20 minutes", "goto": "a"}}}}, "does not match"),
    ({"settings": {"merge": -5}}, "minimum"),
])
def test_the_schema_flags_mistakes(data, problem):
    found = problems(data, SCHEMA)
    assert any(problem in p for p in found), found


DURATIONS_GOOD = ["15s", "20m", "1h30m", "2d", "90", "1.5h", "250ms", "20M", "1H 30M", " 20m ",
                  "1h 30m 15s", "0s", "0"]
DURATIONS_BAD = ["20 minutes", "20min", "1 hour", "m", "", " ", "1h30", "h1", ".5h", "1.h",
                 "-5m", "5x", "1m s", "20m\t", "20m\n", "١٢s", "1_000s", "1e3", "20m; rm"]


@pytest.mark.parametrize("value", [*DURATIONS_GOOD, *DURATIONS_BAD, 0, 90, 1.5, -1, -0.5])
def test_the_schema_and_the_parser_agree_on_every_duration(value):
    schema = SCHEMA["$defs"]["Timeout"]["properties"]["after"]
    try:
        parse_duration(value)
        parsed = True
    except ValueError:
        parsed = False
    assert (problems(value, schema) == []) is parsed
    assert parsed is (value in DURATIONS_GOOD or (not isinstance(value, str) and value >= 0))


# ---------------------------------------------------------------------------------------------
# Transcript test files


def test_the_shipped_transcript_schema_is_up_to_date():
    assert SHIPPED_TRANSCRIPT.read_text(encoding="utf-8") == transcript_schema_text(), (
        "regenerate it: intercept scenario schema --tests -o docs/transcript.schema.json")


def test_the_step_schema_has_every_event_check_and_modifier_of_the_loader():
    fields = {f.encode_name for f in msgspec.structs.fields(StepSpec)}
    assert fields == {*EVENTS, *CHECKS, *(m for ms in MODIFIERS.values() for m in ms)}
    assert TRANSCRIPT_SCHEMA["$defs"]["StepSpec"]["additionalProperties"] is False


def transcript_problems(text: str) -> list[str]:
    return problems(load_located(text, "t.yaml").data, TRANSCRIPT_SCHEMA,
                    root=TRANSCRIPT_SCHEMA)


@pytest.mark.parametrize("path", TRANSCRIPT_FILES, ids=lambda p: p.name)
def test_every_shipped_transcript_file_matches_the_transcript_schema(path):
    assert transcript_problems(path.read_text(encoding="utf-8")) == []
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match and (path.parent / match.group(1)).resolve() == SHIPPED_TRANSCRIPT


def test_the_transcript_schema_flags_mistakes():
    good = """
        scenario: ../buyer-deterrence.yaml
        gap: 2m
        tests:
          - name: ok
            steps:
              - them: hey
                after: +5s
                state: greet
                bot: [/hey/, ...]
              - wait: timer
                outcome: null
                vars: {his_name: null, when: tonight}
              - lookup: {kind: number, ok: true, data: {region: US}}
                effects: [lookup]
                handoff: urgent
        """
    assert transcript_problems(textwrap.dedent(good)) == []
    for broken, problem in [
        (good.replace("state: greet", "stat: greet"), "unknown key 'stat'"),
        (good.replace("wait: timer", "wait: 20 minutes"), "wait: matches none"),
        (good.replace("after: +5s", "after: soon"), "after: does not match"),
        (good.replace("gap: 2m", "gap: 2 min"), "gap: does not match"),
        (good.replace("effects: [lookup]", "effects: [lookups]"), "effects: matches none"),
        (good.replace("handoff: urgent", "handoff: high"), "not one of"),
        (good.replace("name: ok", "nom: ok"), "missing name"),
    ]:
        found = transcript_problems(textwrap.dedent(broken))
        assert any(problem in p for p in found), (problem, found)
