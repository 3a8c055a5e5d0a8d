"""The buyer corpus of `intercept-loadtest --scenario`: realistic texts and the paths buyers take.

The shipped corpus is `loadtest/corpus/buyers.yaml` (its header explains the format). Loading
checks it: unknown keys, a path naming a pool that does not exist, an empty pool, an unknown
outcome or a weight below zero are errors that name the file and the place.

A `Plan` is one buyer's draw: the messages of each step (each message a text, possibly with a
photo), what the path should end in, and what it sends after that outcome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
import yaml

SHIPPED = Path(__file__).parent / "corpus" / "buyers.yaml"
PHOTO = "[photo]"
Ends = Literal["deterred", "opted_out", "open"]
MAX_BYTES = 1_000_000


class PathSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One kind of buyer: the pools it texts from, step by step."""

    name: str
    steps: list[str]
    ends: Ends
    weight: float = 1.0
    after: list[str] = []


class CorpusSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pools: dict[str, list[str | list[str]]]
    paths: list[PathSpec]
    closing: list[str] = []


@dataclass(frozen=True, slots=True)
class Message:
    """One text a buyer sends; `photo`: with a picture (MMS, or a link over SMPP)."""

    text: str
    photo: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """What one buyer will do: `steps` (each one or more messages sent together), the outcome
    the path leads to, the steps of the closing, and the messages after the outcome."""

    path: str
    ends: Ends
    steps: tuple[tuple[Message, ...], ...]
    closing: tuple[tuple[Message, ...], ...]
    after: tuple[tuple[Message, ...], ...]


class Corpus:
    """A loaded, checked corpus; `draw()` gives a buyer its plan."""

    def __init__(self, spec: CorpusSpec, source: str) -> None:
        self.spec = spec
        self.source = source
        self.pools = spec.pools
        self.paths = [p for p in spec.paths if p.weight > 0]
        self._weights = [p.weight for p in self.paths]

    @classmethod
    def load(cls, path: Path | None = None) -> Corpus:
        """Load and check a corpus file (default: the shipped one); ValueError names the fault."""
        path = path or SHIPPED
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"buyer corpus {path}: cannot be read ({exc.strerror})") from None
        if len(raw) > MAX_BYTES:
            raise ValueError(f"buyer corpus {path}: {len(raw):,} bytes; at most "
                             f"{MAX_BYTES:,} are read")
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"buyer corpus {path}: not valid YAML ({exc})") from None
        try:
            spec = msgspec.convert(data, CorpusSpec)
        except msgspec.ValidationError as exc:
            raise ValueError(f"buyer corpus {path}: {exc}") from None
        check(spec, str(path))
        return cls(spec, str(path))

    def draw(self, rng: random.Random) -> Plan:
        """A path by weight, and an alternative from each pool it names."""
        path = rng.choices(self.paths, self._weights)[0]

        def pick(pools: list[str]) -> tuple[tuple[Message, ...], ...]:
            return tuple(messages(rng.choice(self.pools[name])) for name in pools)

        return Plan(path.name, path.ends, pick(path.steps), pick(self.spec.closing),
                    pick(path.after))


def messages(alternative: str | list[str]) -> tuple[Message, ...]:
    """The messages of one alternative: `[photo]` marks the next text as carrying a photo."""
    parts = [alternative] if isinstance(alternative, str) else alternative
    out: list[Message] = []
    photo = False
    for part in parts:
        if part == PHOTO:
            photo = True
            continue
        out.append(Message(part, photo))
        photo = False
    if photo:
        out.append(Message("", True))
    return tuple(out)


def check(spec: CorpusSpec, source: str) -> None:
    """Every name a path uses is a pool, no pool is empty, weights are sane."""
    for name, pool in spec.pools.items():
        if not pool:
            raise ValueError(f"buyer corpus {source}: pool {name!r} is empty")
        for alternative in pool:
            if isinstance(alternative, list) and not alternative:
                raise ValueError(f"buyer corpus {source}: pool {name!r} has an empty list")
    for i, name in enumerate(spec.closing):
        if name not in spec.pools:
            raise ValueError(f"buyer corpus {source}: closing[{i}] names pool {name!r}, "
                             "which is not defined under pools")
    if not any(p.weight > 0 for p in spec.paths):
        raise ValueError(f"buyer corpus {source}: no path has a weight above 0")
    for i, path in enumerate(spec.paths):
        where = f"buyer corpus {source}: paths[{i}] ({path.name})"
        if path.weight < 0:
            raise ValueError(f"{where}: weight is {path.weight}; use 0 or more")
        if not path.steps:
            raise ValueError(f"{where}: has no steps")
        for key, names in (("steps", path.steps), ("after", path.after)):
            for j, name in enumerate(names):
                if name not in spec.pools:
                    raise ValueError(f"{where}: {key}[{j}] names pool {name!r}, which is not "
                                     "defined under pools")
