"""The import graph of intercept/ has no cycles and runs one way, down the layers (DESIGN.md,
"Layers, and the turn"); test files never import one another.

The graph is read with `ast`, as tests/test_engine_purity.py does: every ``import`` and
``from ... import`` in a module counts, wherever it stands (inside a function, under
``if TYPE_CHECKING:``), because each is a dependency a reader has to follow. An edge goes to the
most specific module named (``from ..store.reads import x`` -> ``intercept.store.reads``;
``from ..store import x`` -> ``intercept.store``, the package's face).

Today's known problems are in `ALLOWED`, each naming the part of issue 15 that removes it; the
test fails on any cycle or upward import not listed there, and on a listed one that is gone (so
the list only shrinks). All problems are reported at once.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import intercept

PACKAGE = Path(intercept.__file__).parent
TESTS = Path(__file__).parent

# Layers, lowest first. A module may import its own layer and the layers below, never above.
# Keys are the first name under intercept/ (a module or a package).
LAYERS: dict[str, int] = {
    # 0, the foundation: the exception tree and the small leaf modules of foundation/
    "errors": 0, "foundation": 0,
    # 1, the bottom of DESIGN.md: the pure engine and the store, with what sits beside them
    # (config is decoded with the engine's durations and limits; scenarios compile with it;
    # the package's face re-exports config)
    "engine": 1, "store": 1, "config": 1, "__init__": 1, "scenarios": 1, "credential": 1,
    # the transport types (messages, Sink, Gateway, webhook endpoints as data) that the
    # runtime's sender, the gateways and the HTTP layer share
    "transport": 1,
    # 2, runtime: actors, router, sender, clock
    "runtime": 2,
    # 3, what runs on the runtime
    "gateways": 3, "http": 3, "console": 3, "outreach": 3, "buyers": 3, "authoring": 3,
    # 4, the top: the command line and the composition root
    "cli": 4, "server": 4, "__main__": 4,
}
LAYER_NAMES = {0: "foundation", 1: "engine/store", 2: "runtime", 3: "services", 4: "top"}

# Known cycles and upward imports, as (importer, imported) module pairs with the reason each is
# still there. Issue 15 removed the last of them: keep it empty. Never add an entry to make a
# change pass; fix the import instead (hand the lower layer what it needs).
ALLOWED: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The modules of `known` that module `name` (at `path`) imports, each once."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    yield from sorted(found)


def graph() -> dict[str, list[str]]:
    return {name: list(imports_of(name, path, MODULES)) for name, path in MODULES.items()}


def layer(module: str) -> int | None:
    top = module.split(".")[1] if "." in module else "__init__"
    return LAYERS.get(top)


def cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def problems(edges: dict[str, list[str]], allowed: dict[tuple[str, str], str]) -> list[str]:
    """Every cycle and upward import not in `allowed`, as lines of one message."""
    lines = [f"{name}: not in any layer: place {name.split('.')[1]!r} in LAYERS"
             for name in sorted(edges) if layer(name) is None]
    kept = {a: [b for b in bs if (a, b) not in allowed] for a, bs in edges.items()}
    for component in cycles(kept):
        members = set(component)
        ties = [f"{a} -> {b}" for a in component for b in kept[a] if b in members]
        lines.append(f"import cycle among {', '.join(component)}: {'; '.join(ties)}")
    for a in sorted(kept):
        for b in kept[a]:
            low, high = layer(a), layer(b)
            if low is not None and high is not None and high > low:
                lines.append(f"upward import: {a} ({LAYER_NAMES[low]}) imports {b} "
                             f"({LAYER_NAMES[high]})")
    return lines


def test_the_graph_is_read():
    edges = graph()
    assert "intercept.runtime.actor" in edges["intercept.runtime.router"]
    assert "intercept.store.reads" in edges["intercept.http.api"]
    assert "intercept.engine" in edges["intercept.scenarios"]


def test_no_new_cycle_or_upward_import():
    found = problems(graph(), ALLOWED)
    assert not found, ("the import graph of intercept/ runs the wrong way (DESIGN.md, Layers); "
                       "fix these imports (hand the lower layer what it needs instead):\n  "
                       + "\n  ".join(found))


def test_the_allow_list_only_shrinks():
    edges = graph()
    gone = [f"{a} -> {b} ({part})" for (a, b), part in ALLOWED.items()
            if b not in edges.get(a, [])]
    assert not gone, ("these imports are gone: delete their entries from ALLOWED in "
                      "tests/test_architecture.py:\n  " + "\n  ".join(gone))
    needed = [(a, b) for (a, b) in ALLOWED
              if not problems(edges, {k: v for k, v in ALLOWED.items() if k != (a, b)})]
    assert not needed, f"these entries allow nothing the rest do not: {needed}"


def test_a_new_cycle_or_upward_import_is_named():
    edges = {name: list(targets) for name, targets in graph().items()}
    edges["intercept.engine.machine"].append("intercept.runtime.sender")
    edges["intercept.errors"].append("intercept.foundation.phone")
    edges["intercept.foundation.phone"].append("intercept.errors")
    found = "\n".join(problems(edges, ALLOWED))
    assert ("upward import: intercept.engine.machine (engine/store) imports "
            "intercept.runtime.sender (runtime)") in found
    assert "import cycle among intercept.errors, intercept.foundation.phone" in found


def test_gateways_import_neither_http_nor_store():
    """A gateway speaks the transport types (intercept/transport.py): its webhooks are
    `Endpoint`s the HTTP layer mounts, and what the store answers reaches it as `Accepted`."""
    found = [f"{a} imports {b}" for a, bs in sorted(graph().items())
             if a.startswith("intercept.gateways") for b in bs
             if b.startswith(("intercept.http", "intercept.store"))]
    assert not found, ("gateways take transport types (intercept.transport) and errors "
                       "(intercept.errors) instead:\n  " + "\n  ".join(found))


def test_test_files_do_not_import_each_other():
    tests = {p.stem: p for p in TESTS.glob("*.py")}
    known = {stem: path for stem, path in tests.items()}
    found = [f"{p.name} imports {target}" for stem, p in sorted(tests.items())
             for target in imports_of(stem, p, known) if target.startswith("test_")]
    assert not found, ("move what test files share to tests/helpers.py or a fixture in "
                       "tests/conftest.py:\n  " + "\n  ".join(found))


# -- SQL only in store/ ----------------------------------------------------------------------

SQL_TEXT = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(TABLE|INDEX|TRIGGER|VIEW)|DROP\s+(TABLE|INDEX)|ALTER\s+TABLE|PRAGMA\s+\w+|"
    r"BEGIN(\s+IMMEDIATE)?\s*;?$|COMMIT\s*;?$)", re.S)
"""SQL statements (keywords in capitals, as this project writes them)."""
DRIVERS = ("sqlite_utils", "sqlcipher3", "apsw")
"""Database libraries only store/ may import (sqlite3 may be named elsewhere, for the type of
a connection handed to a store function or to catch its errors, but not called)."""
RUNS_SQL = {"execute", "executemany", "executescript", "query"}
"""Methods that run SQL on a connection, a cursor or the store (so does `sqlite3.connect`
open a connection that bypasses `store.opening`)."""


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of `tree` (module, classes, functions, attributes)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for i, stmt in enumerate(body):
            if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                    and (i == 0 or isinstance(body[i - 1], ast.AnnAssign | ast.Assign))):
                found.add(id(stmt.value))
    return found


def sql_outside_store(name: str, source: str) -> list[str]:
    """Where module `name` (outside store/) imports a database driver, runs SQL on a
    connection or holds SQL text, as 'module:line what' lines."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if not node.level else [])
            found += [f"{where} imports {m}" for m in modules if m.split(".")[0] in DRIVERS]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr in RUNS_SQL or ast.unparse(node.func) == "sqlite3.connect"):
            found.append(f"{where} calls .{node.func.attr}(...)")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in skip and SQL_TEXT.search(node.value)):
            found.append(f"{where} holds SQL text {node.value[:40]!r}")
    return found


def test_sql_only_in_the_store():
    found = [line for name, path in MODULES.items()
             if not name.startswith("intercept.store")
             for line in sql_outside_store(name, path.read_text(encoding="utf-8"))]
    assert not found, ("SQL belongs in intercept/store/: move these reads into a query "
                       "function there (like store/reads.py) and these writes into a writer "
                       "op (store/ops.py):\n  " + "\n  ".join(found))


def test_sql_outside_the_store_is_found():
    source = '''
"""SELECT name FROM docs is a docstring, not a query."""
import sqlite_utils

def f(conn, store):
    conn.execute("SELECT 1 FROM api_tokens WHERE digest = ?", ())
    store.query(f"UPDATE outbox SET status = {1}")
    sqlite3.connect("x.db")
    return "INSERT OR IGNORE INTO audit (actor) VALUES (?)"
'''
    found = "\n".join(sql_outside_store("intercept.x", source))
    assert "intercept.x:3 imports sqlite_utils" in found
    assert "intercept.x:6 calls .execute(...)" in found
    assert "intercept.x:7 calls .query(...)" in found
    assert "intercept.x:8 calls .connect(...)" in found
    assert "intercept.x:9 holds SQL text 'INSERT OR IGNORE INTO audit" in found
    assert "docs" not in found


def test_the_top_of_the_package_is_a_handful():
    """The top of intercept/ holds the package's face and the modules a newcomer opens first;
    everything else lives in a package named for its layer or its part (docs/architecture.md)."""
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == {"__init__", "__main__", "config", "credential", "errors", "scenarios",
                   "server", "transport"}, (
        "a new module at the top of intercept/: put it in the package of its layer "
        "(foundation/, engine/, store/, runtime/, ...) and in LAYERS")


def test_the_load_tester_has_no_import_cycle():
    """loadtest/ too: the run, the buyers' behaviours and the report share loadtest/state.py
    instead of importing each other."""
    folder = PACKAGE.parent / "loadtest"
    known = {module_name(p): p for p in sorted(folder.rglob("*.py"))}
    edges = {name: list(imports_of(name, path, known)) for name, path in known.items()}
    assert "loadtest.state" in edges["loadtest.run"]
    assert not cycles(edges), f"import cycles in loadtest/: {cycles(edges)}"
