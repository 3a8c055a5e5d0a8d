"""What a reload may take from a changed config file, and what only a restart can.

A running server takes `[[numbers]]` and `[cities]` from the file again (SIGHUP, ``intercept
scenario reload``, ``POST /api/scenarios/reload``): numbers added, removed or given another
persona, city or scenario, cities renamed or given another link. Everything else (the gateway,
the store, ``[http]``, campaigns...) is read once at start: a file that changes any of it is
refused whole, naming the keys, so that the server never runs half of one file and half of
another. `restart_only` finds those keys; `NumbersChange` says what a reload changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..config import Config
from ..foundation.phone import mask
from ..scenarios import ReloadReport

LIVE_SECTIONS = ("numbers", "cities")
"""The parts of the config a reload applies."""


@dataclass
class NumbersChange:
    """Our numbers and cities before and after a reload (numbers masked in `summary`)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """Numbers whose persona, city, scenario or kind changed."""
    cities: list[str] = field(default_factory=list)
    """Cities (their keys) added, removed or changed."""

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.cities)

    def summary(self) -> str:
        if not self.any:
            return "numbers and cities unchanged"
        parts = [f"{len(names)} {what}" for names, what in (
            (self.added, "added"), (self.removed, "removed"), (self.changed, "changed"))
            if names]
        text = f"numbers: {', '.join(parts) or 'unchanged'}"
        named = [f"{what} {_masked(names)}" for names, what in (
            (self.added, "added"), (self.removed, "removed")) if names]
        if named:
            text += f" ({'; '.join(named)})"
        if self.cities:
            text += f"; cities changed: {', '.join(self.cities)}"
        return text


def _masked(numbers: list[str], most: int = 5) -> str:
    """A few numbers, masked; the count of the rest."""
    shown = ", ".join(mask(n) for n in numbers[:most])
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")


@dataclass
class Reloaded:
    """What a reload changed: scenario versions, and numbers and cities."""

    scenarios: ReloadReport
    numbers: NumbersChange

    def summary(self) -> str:
        text = self.scenarios.summary()
        return f"{text}; {self.numbers.summary()}" if self.numbers.any else text


def numbers_change(old: Config, new: Config) -> NumbersChange:
    """What replacing `old`'s numbers and cities by `new`'s changes."""
    before = {n.number: n for n in old.numbers}
    after = {n.number: n for n in new.numbers}
    return NumbersChange(
        added=[n for n in after if n not in before],
        removed=[n for n in before if n not in after],
        changed=[n for n in after if n in before and after[n] != before[n]],
        cities=sorted(k for k in set(old.cities) | set(new.cities)
                      if old.cities.get(k) != new.cities.get(k)))


def restart_only(old: Config, new: Config) -> list[str]:
    """The keys `new` changes that a running server cannot take (empty: it may reload).

    Besides every section but numbers and cities: a number's own `rate` (the gateway reads
    the rates at start), and the time zone of a city a campaign texts in (its send window was
    set at start)."""
    keys: list[str] = []
    a, b = _plain(old), _plain(new)
    for section in sorted(set(a) | set(b)):
        if section not in LIVE_SECTIONS:
            keys += _differences(a.get(section), b.get(section), section)
    # [webhooks.NAME] tables are kept under `calls`: name them as the file does
    keys = [k.replace("webhooks.calls.", "webhooks.", 1) for k in keys]
    rates = {n.number: n.rate for n in old.numbers}
    for i, number in enumerate(new.numbers):
        if number.rate != rates.get(number.number, 0.0):
            keys.append(f"numbers[{i}].rate")
    for city in sorted({c.city for c in old.campaigns}):
        was, now = old.cities.get(city), new.cities.get(city)
        if was is not None and now is not None and was.timezone != now.timezone:
            keys.append(f"cities.{city}.timezone")
    return keys


def _plain(config: Config) -> dict[str, Any]:
    data = msgspec.to_builtins(config, enc_hook=_seconds)
    data.pop("source", None)
    return data


def _seconds(value: Any) -> float:
    """Durations compare as seconds ("1m" is "60s")."""
    if isinstance(value, float):
        return float(value)
    raise NotImplementedError(f"cannot compare a {type(value).__name__} in the config")


def _differences(a: Any, b: Any, where: str) -> list[str]:
    """The paths under `where` at which `a` and `b` differ (values never shown: secrets)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[str] = []
        for key in sorted(set(a) | set(b)):
            found += _differences(a.get(key), b.get(key), f"{where}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and any(
            isinstance(x, dict) for x in a):
        found = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found += _differences(x, y, f"{where}[{i}]")
        return found
    return [] if a == b else [where]
