"""The scenarios a server runs: every file of the scenario folder, compiled at start-up."""

from __future__ import annotations

from pathlib import Path

from .engine import Machine, load_scenario
from .errors import ScenarioError, ScenarioErrors


class ScenarioRegistry:
    """Compiled scenarios by name and version. Conversations keep the version they started on."""

    def __init__(self, machines: list[Machine] | None = None):
        self._versions: dict[tuple[str, int], Machine] = {}
        self._current: dict[str, Machine] = {}
        for machine in machines or ():
            self.add(machine)

    def add(self, machine: Machine) -> None:
        self._versions[(machine.name, machine.version)] = machine
        current = self._current.get(machine.name)
        if current is None or machine.version >= current.version:
            self._current[machine.name] = machine

    def current(self, name: str) -> Machine | None:
        return self._current.get(name)

    def get(self, name: str, version: int) -> Machine | None:
        return self._versions.get((name, version))

    def names(self) -> list[str]:
        return sorted(self._current)

    @classmethod
    def from_dir(cls, folder: Path) -> ScenarioRegistry:
        """Compile every `*.yaml` in `folder`; raise every error found, in file order."""
        if not folder.is_dir():
            raise ScenarioError(f"the scenario folder {folder} does not exist")
        registry = cls()
        errors: list[ScenarioError] = []
        files: dict[str, Path] = {}
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            try:
                machine = load_scenario(path)
            except ScenarioErrors as exc:
                errors.extend(exc.errors)
                continue
            except ScenarioError as exc:
                errors.append(exc)
                continue
            if machine.name in files:
                errors.append(ScenarioError(f"scenario name {machine.name!r} is also used by "
                                            f"{files[machine.name]}", file=str(path)))
            files[machine.name] = path
            registry.add(machine)
        if errors:
            raise ScenarioErrors(errors)
        return registry
