"""The scenarios a server runs: every file of the scenario folder, compiled at start-up and on
reload. Every version ever loaded stays available, so a conversation keeps the version it
started on; new conversations take the version the folder holds now.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .engine import Machine, load_scenario
from .engine.text import READ_LIMIT
from .errors import ScenarioError, ScenarioErrors
from .foundation import languages


@dataclass
class ReloadReport:
    """What a load or reload changed: (name, version) pairs."""

    added: list[tuple[str, int]] = field(default_factory=list)
    unchanged: list[tuple[str, int]] = field(default_factory=list)

    def summary(self) -> str:
        if not self.added:
            return f"no changes ({len(self.unchanged)} scenarios loaded)"
        added = ", ".join(f"{n} v{v}" for n, v in self.added)
        return f"loaded {added}; {len(self.unchanged)} unchanged"


class ScenarioRegistry:
    """Compiled scenarios by name and version."""

    def __init__(self, machines: list[Machine] | None = None):
        self._versions: dict[tuple[str, int], Machine] = {}
        self._digests: dict[tuple[str, int], str] = {}
        self._current: dict[str, Machine] = {}
        for machine in machines or ():
            self.add(machine)

    def add(self, machine: Machine, digest: str = "") -> None:
        """Make `machine` available, and current for its name."""
        key = (machine.name, machine.version)
        if machine.detect is not None:
            languages.warm(machine.languages)  # at load, not on a first text
        self._versions[key] = machine
        self._digests[key] = digest
        self._current[machine.name] = machine

    def current(self, name: str) -> Machine | None:
        return self._current.get(name)

    def get(self, name: str, version: int) -> Machine | None:
        return self._versions.get((name, version))

    def names(self) -> list[str]:
        return sorted(self._current)

    def versions(self) -> list[tuple[str, int]]:
        return sorted(self._versions)

    @classmethod
    def from_dir(cls, folder: Path, *, read_limit: int = READ_LIMIT) -> ScenarioRegistry:
        """Compile every `*.yaml` in `folder`; raise every error found, in file order."""
        registry = cls()
        registry.reload(folder, read_limit=read_limit)
        return registry

    def reload(self, folder: Path, *, required: set[str] = frozenset(),
               read_limit: int = READ_LIMIT) -> ReloadReport:
        """Load the folder again. All or nothing: on any error nothing changes.

        A file whose content changed must carry a new `version`: running conversations keep
        the version they started on, so one number cannot mean two scenarios. `required`
        names scenarios the config uses; the folder must still have them.
        """
        return self.apply(compile_folder(folder, read_limit=read_limit), required=required)

    def apply(self, found: list[tuple[Machine, str, Path]], *,
              required: set[str] = frozenset()) -> ReloadReport:
        """Install what `compile_folder` found (see `reload`)."""
        errors = self.problems(found, required=required)
        if errors:
            raise ScenarioErrors(errors)
        report = ReloadReport()
        for machine, digest, _ in found:
            key = (machine.name, machine.version)
            (report.unchanged if key in self._versions else report.added).append(key)
            if key in self._versions:
                self._current[machine.name] = self._versions[key]
            else:
                self.add(machine, digest)
        return report

    def problems(self, found: list[tuple[Machine, str, Path]], *,
                 required: set[str] = frozenset()) -> list[ScenarioError]:
        """Why `apply(found, required=required)` would refuse (empty: it would not)."""
        errors = []
        have = {machine.name for machine, _, _ in found}
        for name in sorted(required - have):
            errors.append(ScenarioError(f"the config uses scenario {name!r} but no file in the "
                                        "scenario folder defines it any more"))
        for machine, digest, path in found:
            key = (machine.name, machine.version)
            if self._digests.get(key) not in (None, digest):
                errors.append(ScenarioError(
                    f"scenario {machine.name!r} changed but its version is still "
                    f"{machine.version}: raise 'version' (running conversations keep the "
                    "version they started on)", file=str(path)))
        return errors


def compile_folder(folder: Path, *, read_limit: int = READ_LIMIT
                   ) -> list[tuple[Machine, str, Path]]:
    """Compile every scenario file of `folder` (with a digest of each); raise all errors.
    `read_limit`: the characters of a reply the matchers read (config `runtime.read_limit`)."""
    if not folder.is_dir():
        raise ScenarioError(f"the scenario folder {folder} does not exist")
    errors: list[ScenarioError] = []
    found: list[tuple[Machine, str, Path]] = []
    names: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        try:
            machine = load_scenario(path, read_limit=read_limit)
        except ScenarioErrors as exc:
            errors.extend(exc.errors)
            continue
        except ScenarioError as exc:
            errors.append(exc)
            continue
        if machine.name in names:
            errors.append(ScenarioError(f"scenario name {machine.name!r} is also used by "
                                        f"{names[machine.name]}", file=str(path)))
            continue
        names[machine.name] = path
        found.append((machine, _digest(machine, path), path))
    if errors:
        raise ScenarioErrors(errors)
    return found


def _digest(machine: Machine, path: Path) -> str:
    """A fingerprint of a scenario file and every file it includes."""
    info = getattr(machine, "info", None)
    files = [Path(f) for f in getattr(info, "files", None) or [path]]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.name).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()
