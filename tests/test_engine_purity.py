"""The engine stays pure: no module under intercept/engine imports I/O, clocks or randomness.

`step(state, event, now)` must give the same answer for the same input, so the engine may not
read the clock, draw global randomness, touch the network, the database or the OS. Reading a
scenario file with `pathlib` is the one I/O allowed (in `load_scenario`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import intercept.engine

FORBIDDEN = frozenset({
    "trio", "sqlite3", "sqlite_utils", "time", "datetime", "random", "secrets", "socket",
    "asyncio", "httpx", "prometheus_client", "threading", "os",
})

ENGINE_DIR = Path(intercept.engine.__file__).parent
MODULES = sorted(ENGINE_DIR.rglob("*.py"))


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, top-level module name) of every import in `source`, however it is spelled."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
              and (getattr(node.func, "id", None) == "__import__"
                   or getattr(node.func, "attr", None) == "import_module")
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def test_the_engine_package_has_modules():
    names = {p.name for p in MODULES}
    assert {"__init__.py", "machine.py", "compiler.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_engine_module_imports_nothing_impure(path):
    bad = [f"{path.name}:{line}: imports {name}"
           for line, name in imported_modules(path.read_text(encoding="utf-8"))
           if name in FORBIDDEN]
    assert not bad, "the engine must stay pure:\n" + "\n".join(bad)


@pytest.mark.parametrize("source", [
    "import time",
    "import os.path",
    "from datetime import datetime",
    "from trio import sleep",
    "import random as r",
    "def f():\n    import sqlite3",
    "__import__('socket')",
    "importlib.import_module('threading')",
])
def test_the_check_sees_every_spelling_of_an_import(source):
    assert {name for _, name in imported_modules(source)} & FORBIDDEN


def test_relative_and_allowed_imports_pass():
    source = "from . import rng\nfrom ..errors import EngineError\nimport re\nimport msgspec\n"
    assert not {name for _, name in imported_modules(source)} & FORBIDDEN
