"""The JSON Schema of scenario files, from the msgspec model, for editors (yaml-language-server).

Put this first line in a scenario file and an editor with the YAML extension completes keys,
shows their descriptions and flags typos while you type:

    # yaml-language-server: $schema=../docs/scenario.schema.json
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..engine.model import Scenario
from ..foundation.jsontext import canonical, canonical_text

STATE_NAME = "^[A-Za-z][A-Za-z0-9_-]*$"


def _tidy(node: Any) -> Any:
    """Drop msgspec's `null` alternatives and `default: null`: YAML authors leave keys out."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v) for k, v in node.items()}
    if "anyOf" in out:
        options = [o for o in out["anyOf"] if o != {"type": "null"}]
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
