"""Jinja2 templates of the console (templates/ in this package), autoescaped everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from .sessions import LIFETIME


def when(ts: float | None) -> str:
    """A Unix time as ``2024-05-01 12:00:05 UTC`` (empty for none)."""
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "pt": "Portuguese", "fr": "French",
                  "zh": "Chinese", "vi": "Vietnamese", "ko": "Korean", "tl": "Tagalog",
                  "ru": "Russian", "ar": "Arabic"}


def language_name(code: str) -> str:
    """``Spanish (es)``: the name of a language code, for advocates (the code alone when it is
    not a common one)."""
    name = LANGUAGE_NAMES.get(code)
    return f"{name} ({code})" if name else code


class Renderer:
    """Renders a template by name; every value is HTML-escaped unless a template says not."""

    def __init__(self) -> None:
        self.env = Environment(loader=PackageLoader("intercept.console", "templates"),
                               autoescape=True, undefined=StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["when"] = when
        self.env.filters["language_name"] = language_name
        self.env.globals["hours"] = round(LIFETIME / 3600)

    def render(self, name: str, **values: Any) -> str:
        values.setdefault("error", None)
        values.setdefault("page", "")
        return self.env.get_template(name).render(**values)
