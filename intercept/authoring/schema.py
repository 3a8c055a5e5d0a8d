"""The JSON Schemas of scenario files and of transcript test files, from the msgspec models,
for editors (yaml-language-server).

Put this first line in a scenario file and an editor with the YAML extension completes keys,
shows their descriptions and flags typos while you type:

    # yaml-language-server: $schema=../docs/scenario.schema.json

and this one in a transcript test file (scenarios/tests/*.yaml):

    # yaml-language-server: $schema=../../docs/transcript.schema.json
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..engine.model import Scenario
from ..foundation.jsontext import canonical, canonical_text

STATE_NAME = "^[A-Za-z][A-Za-z0-9_-]*$"


def _tidy(node: Any, *, nulls: bool = False) -> Any:
    """Drop msgspec's `null` alternatives (unless `nulls`: where null means something) and
    `default: null`: YAML authors leave keys out."""
    if isinstance(node, list):
        return [_tidy(item, nulls=nulls) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v, nulls=nulls) for k, v in node.items()}
    if "anyOf" in out:
        options = [o for o in out["anyOf"] if nulls or o != {"type": "null"}]
        if len(options) == 1:
            del out["anyOf"]
            merged = dict(options[0])
            merged.update({k: v for k, v in out.items() if k not in merged})
            out = merged
        else:
            out["anyOf"] = options
    if out.get("default", 0) is None:
        del out["default"]
    if out.get("required") == []:
        del out["required"]
    return out


def scenario_schema() -> dict[str, Any]:
    """The schema as a dict (JSON Schema 2020-12)."""
    raw = msgspec.json.schema(Scenario)
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Intercept scenario",
        "description": "A scenario file for Intercept (docs/scenarios.md).",
        **canonical(_tidy(raw)),
    }
    states = schema["$defs"]["Scenario"]["properties"]["states"]
    states["propertyNames"] = {"pattern": STATE_NAME}
    return schema


def schema_text() -> str:
    """The schema as the JSON text shipped in docs/scenario.schema.json."""
    return canonical_text(scenario_schema())


def transcript_schema() -> dict[str, Any]:
    """The schema of transcript test files as a dict (JSON Schema 2020-12). Null stays where
    the loader takes it (`outcome: null`, a variable expected unset)."""
    from .transcripts import StepSpec, TestFile

    (top, _), defs = msgspec.json.schema_components([TestFile, StepSpec])
    defs["Case"]["properties"]["steps"]["items"] = {"$ref": "#/$defs/StepSpec"}
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Intercept transcript tests",
        "description": "A file of transcript tests for one scenario (docs/scenarios.md, "
                       "'Transcript tests').",
        **canonical(_tidy({**top, "$defs": defs}, nulls=True)),
    }
    return schema


def transcript_schema_text() -> str:
    """The schema as the JSON text shipped in docs/transcript.schema.json."""
    return canonical_text(transcript_schema())
