"""Fixtures shared by the test files; plain helpers (configs, scenarios, servers) are in
tests/helpers.py. Test files never import one another (tests/test_architecture.py checks it).

Tests marked ``slow`` (real processes, real seconds) are left out by ``pytest -m "not slow"``;
the default run includes them.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest

from intercept.runtime import clock as clock_module

from helpers import START


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Set the wall-clock time a server started next will begin at (default `helpers.START`)."""

    def set_start(at: float) -> None:
        monkeypatch.setattr(clock_module, "time", types.SimpleNamespace(time=lambda: at))

    set_start(START)
    return set_start
