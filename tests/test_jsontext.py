"""Generated documents are canonical: the same bytes on every Python and dependency version."""

from __future__ import annotations

import json

import msgspec

from intercept.authoring.schema import schema_text
from intercept.foundation.jsontext import canonical, canonical_text


class Indented(msgspec.Struct):
    """First line of the summary,
        and an indented second line as Python 3.11 keeps it."""

    b: int
    a: int


def test_descriptions_are_cleaned_whatever_the_indentation_kept():
    kept = {"description": "First line,\n        second line."}
    stripped = {"description": "First line,\nsecond line."}
    assert canonical(kept) == canonical(stripped) == stripped


def test_a_struct_schema_comes_out_the_same_as_python_313_would_write_it():
    doc = canonical(msgspec.json.schema(Indented))
    assert doc["$defs"]["Indented"]["description"] == (
        "First line of the summary,\nand an indented second line as Python 3.11 keeps it.")
    assert doc["$defs"]["Indented"]["required"] == ["a", "b"]


def test_keys_are_sorted_at_every_level():
    text = canonical_text({"z": {"b": 1, "a": [{"d": 0, "c": 0}]}, "a": 1})
    assert text == json.dumps({"a": 1, "z": {"a": [{"c": 0, "d": 0}], "b": 1}}, indent=2) + "\n"


def test_only_description_strings_and_required_name_lists_change():
    node = {"description": {"description": "  x\n  y"}, "required": [3, 1],
            "properties": {"required": {"type": "string"}}}
    assert canonical(node) == {"description": {"description": "x\ny"}, "required": [3, 1],
                               "properties": {"required": {"type": "string"}}}


def test_no_shipped_description_keeps_source_indentation():
    def descriptions(node):
        if isinstance(node, dict):
            own = [node["description"]] if isinstance(node.get("description"), str) else []
            return own + [d for v in node.values() for d in descriptions(v)]
        if isinstance(node, list):
            return [d for v in node for d in descriptions(v)]
        return []

    found = descriptions(json.loads(schema_text()))
    assert found and not [d for d in found if "\n " in d]
