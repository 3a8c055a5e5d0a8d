"""A real scenario in compressed time, for `intercept-loadtest --scenario`.

`write_scaled(source, folder, scale)` copies a scenario file and the files it includes into
`folder`, multiplying every duration the scenario writes (the merge window, "busy" pauses,
state timeouts, the expiry) by `scale`: at 0.01 a 15 s merge window is 0.15 s and a 40 m
timeout 24 s. The server's reply delays are scaled by the same factor through its
`delays.scale` setting, and the simulated buyers' pauses too, so a conversation runs as it
would, a hundred times faster, with merging kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from intercept.engine.durations import parse_duration

SHIPPED = Path(__file__).resolve().parent.parent / "scenarios" / "buyer-deterrence.yaml"
DURATION_KEYS = frozenset({"after", "merge", "min", "max"})
_UNIT = re.compile(r"[a-zA-Z]")
MAX_FILES = 32


@dataclass(frozen=True, slots=True)
class ScaledScenario:
    """What the load run needs to know of the scenario it drives."""

    name: str
    merge: float
    """The scenario-wide merge window after scaling, seconds (0: none)."""
    busy_max: float
    """The longest scaled "busy" pause (seconds)."""
    files: tuple[Path, ...]


def resolve(text: str) -> Path:
    """`shipped` or a scenario file; ValueError says what is wrong."""
    path = SHIPPED if text == "shipped" else Path(text)
    if not path.is_file():
        raise ValueError(f"--scenario {text}: no such file"
                         + (" (the shipped scenarios are in the repository's scenarios/)"
                            if text == "shipped" else ""))
    return path.resolve()


def scale_value(value: Any, scale: float) -> Any:
    """A duration string with a unit ("40m", "1h30m") times `scale`; anything else as is
    (bare numbers under min/max are amounts, e.g. a `number:` matcher)."""
    if not isinstance(value, str) or not _UNIT.search(value):
        return value
    try:
        seconds = parse_duration(value)
    except ValueError:
        return value
    if seconds <= 0:
        return value
    return f"{max(seconds * scale, 0.001):.3f}s"


def scale_tree(node: Any, scale: float) -> Any:
    """A copy of parsed YAML with every duration under a key of `DURATION_KEYS` scaled."""
    if isinstance(node, dict):
        return {k: scale_value(v, scale) if k in DURATION_KEYS and not isinstance(v, dict)
                else scale_tree(v, scale) for k, v in node.items()}
    if isinstance(node, list):
        return [scale_tree(v, scale) for v in node]
    return node


def write_scaled(source: Path, folder: Path, scale: float) -> ScaledScenario:
    """Copy `source` and its includes into `folder`, durations times `scale`."""
    if scale <= 0:
        raise ValueError("--delay-scale must be above 0 for a scenario run (0 would turn the "
                         "delays off, and the server merges fragments only with delays on)")
    base = source.parent
    todo = [source]
    done: dict[Path, Any] = {}
    while todo:
        path = todo.pop()
        if path in done:
            continue
        if len(done) >= MAX_FILES:
            raise ValueError(f"{source}: includes more than {MAX_FILES} files")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot be read as a scenario ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a scenario file is a mapping at the top")
        done[path] = data
        for include in data.get("include") or []:
            target = (path.parent / str(include)).resolve()
            if not target.is_relative_to(base):
                raise ValueError(f"{path}: include {include!r} is outside {base}; the load "
                                 "tester copies only files under the scenario's folder")
            todo.append(target)
    for path, data in done.items():
        out = folder / path.relative_to(base)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(scale_tree(data, scale), allow_unicode=True,
                                      sort_keys=False, width=1000), encoding="utf-8")
    main = done[source]
    settings = main.get("settings") or {}
    merge = settings.get("merge")
    busy = settings.get("busy") or {}
    return ScaledScenario(
        name=str(main.get("name", source.stem)),
        merge=parse_duration(merge) * scale if merge is not None else 0.0,
        busy_max=parse_duration(busy["max"]) * scale if isinstance(busy, dict)
        and "max" in busy else 0.0,
        files=tuple(folder / p.relative_to(base) for p in done))
