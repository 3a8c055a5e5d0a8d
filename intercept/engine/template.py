"""`{placeholder}` templates: `{persona.name}`, `{city.link}`, `{price|that}` (with a fallback).

`{{` and `}}` stand for literal braces.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


class Template:
    """A parsed template: literal text and (name, fallback) slots."""

    __slots__ = ("names", "parts", "source")

    def __init__(self, source: str):
        self.source = source
        parts: list[str | tuple[str, str]] = []
        names: list[str] = []
        pos = 0
        literal = ""
        for match in _TOKEN.finditer(source):
            literal += source[pos : match.start()]
            pos = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                literal += token[0]
                continue
            if match.group(1) is None:
                raise ValueError(f"unmatched {token!r} in {source!r} (write {token * 2} for a "
                                 "literal brace)")
            name, _, fallback = match.group(1).partition("|")
            name = name.strip()
            if not _NAME.fullmatch(name):
                raise ValueError(f"bad placeholder {{{match.group(1)}}} in {source!r}")
            if literal:
                parts.append(literal)
                literal = ""
            parts.append((name, fallback))
            names.append(name)
        literal += source[pos:]
        if literal:
            parts.append(literal)
        self.parts = tuple(parts)
        self.names = tuple(names)

    def render(self, values: dict[str, str]) -> str:
        if not self.names:
            return self.source if not self.parts else self.parts[0]  # type: ignore[return-value]
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = values.get(part[0])
                out.append(value if value else part[1])
        return "".join(out)
