"""Canonical JSON for the documents Intercept generates and ships (JSON Schema, OpenAPI).

A shipped document must come out byte-for-byte the same on every Python and every dependency
version the project allows, or its staleness test fails on a machine that did nothing wrong.
Python 3.13 strips a docstring's indentation at compile time and msgspec versions differ in what
they keep of it, so every `description` is passed through `inspect.cleandoc`; objects are emitted
with sorted keys and `required` lists sorted, so no library's ordering leaks into the file.
"""

from __future__ import annotations

import inspect
import json
from typing import Any


def canonical(node: Any) -> Any:
    """`node` with every `description` string cleaned and every `required` list sorted."""
    if isinstance(node, list):
        return [canonical(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description" and isinstance(value, str):
            out[key] = inspect.cleandoc(value)
        elif key == "required" and isinstance(value, list) and all(
                isinstance(v, str) for v in value):
            out[key] = sorted(value)
        else:
            out[key] = canonical(value)
    return out


def canonical_text(document: Any) -> str:
    """The JSON text of `document`: canonical, sorted keys, two-space indent, one final newline."""
    return json.dumps(canonical(document), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
