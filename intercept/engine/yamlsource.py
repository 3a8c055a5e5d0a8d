"""YAML with positions: plain Python data plus a map from field paths to file lines.

Scenario authors need errors that point at a line, so we compose the YAML node tree (which
carries marks) instead of loading straight to Python objects.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import ScenarioError

try:  # the C loader is ~10x faster when PyYAML was built with libyaml
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``("states", "greet", "expect", 2)`` -> ``states.greet.expect[2]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class Located:
    """Parsed YAML data and the (line, column) of every node, both 1-based; `keys` holds the
    position of each mapping key (by the path of its value)."""

    def __init__(self, data: Any, marks: dict[Path, tuple[int, int]], file: str,
                 keys: dict[Path, tuple[int, int]] | None = None):
        self.data = data
        self.marks = marks
        self.file = file
        self.keys = keys if keys is not None else {}

    def where(self, path: Path) -> tuple[int, int]:
        """Position of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return self.marks.get((), (1, 1))

    def error(self, path: Path, message: str) -> ScenarioError:
        line, col = self.where(path)
        return ScenarioError(message, file=self.file, line=line, col=col, path=format_path(path))


def load_located(text: str, file: str) -> Located:
    """Parse `text`; raise `ScenarioError` with the position of a YAML syntax error."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or exc.context or "invalid YAML"
        where = exc.context_mark
        if exc.problem and exc.context and where is not None and where is not mark:
            # "found unexpected end of stream" alone points at the end of the file
            problem += f" ({exc.context} at line {where.line + 1}, column {where.column + 1})"
        raise ScenarioError(f"YAML syntax error: {problem}", file=file, line=line,
                            col=col) from None
    marks: dict[Path, tuple[int, int]] = {}
    keys: dict[Path, tuple[int, int]] = {}
    if root is None:
        return Located({}, marks, file)
    constructor = yaml.SafeLoader("")  # a constructor to turn scalar nodes into Python values

    def fail(node: yaml.Node, path: Path, message: str) -> ScenarioError:
        return ScenarioError(message, file=file, line=node.start_mark.line + 1,
                             col=node.start_mark.column + 1, path=format_path(path))

    def construct(node: yaml.Node, path: Path) -> Any:
        try:
            return constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError) as exc:  # e.g. an unknown !!tag
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise fail(node, path, f"YAML error: {problem}") from None

    def build(node: yaml.Node, path: Path) -> Any:
        marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise fail(key_node, path, "YAML merge keys ('<<') are not supported: write "
                                               "the fields out, or reuse a whole value with an "
                                               "alias (*name)")
                key = construct(key_node, path)
                if not isinstance(key, str):  # yes:, no:, 8:30: keys mean their words
                    key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)
                if key in out:
                    line = key_node.start_mark.line + 1
                    raise ScenarioError(f"duplicate key {key!r}", file=file, line=line,
                                        col=key_node.start_mark.column + 1,
                                        path=format_path((*path, key)))
                keys[(*path, key)] = (key_node.start_mark.line + 1,
                                      key_node.start_mark.column + 1)
                out[key] = build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(child, (*path, i)) for i, child in enumerate(node.value)]
        value = construct(node, path)
        if isinstance(value, bool) and node.value.lower() not in ("true", "false"):
            return node.value  # YAML 1.1 reads yes/no/on/off as booleans; authors mean words
        if isinstance(value, int | float) and ":" in node.value:
            return node.value  # nor is 8:30 the number 510 (YAML 1.1 base 60)
        return value

    return Located(build(root, ()), marks, file, keys)


_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_PATH_PART = re.compile(r"\.(\w+)|\[(\d+)\]")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def split_msgspec_error(message: str) -> tuple[str, Path]:
    """Split msgspec's "Expected ... - at `$.a[0].b`" into a message and a path tuple."""
    match = _MSGSPEC_PATH.search(message)
    path: list[str | int] = []
    if match:
        for name, index in _PATH_PART.findall(match.group("path")):
            path.append(int(index) if index else name)
        message = message[: match.start()]
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown:
        path.append(unknown.group("field"))
        message = f"unknown field {unknown.group('field')!r}"
    elif message.startswith("Object missing required field"):
        message = message.replace("Object missing required field", "missing required field")
    else:
        message = message[:1].lower() + message[1:]
    message = message.replace("`", "'")
    return message.replace(" | null'", "'").replace("'null | ", "'"), tuple(path)
