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
from collections.abc import Iterator
from pathlib import Path

import intercept

PACKAGE = Path(intercept.__file__).parent
TESTS = Path(__file__).parent

# Layers, lowest first. A module may import its own layer and the layers below, never above.
# Keys are the first name under intercept/ (a module or a package); `cli*` covers the cli_*.py
# modules and the cli package.
LAYERS: dict[str, int] = {
    # 0, the foundation: small leaf modules every layer may use
    "errors": 0, "backoff": 0, "caching": 0, "phone": 0, "jsontext": 0,
    "private": 0, "resources": 0, "terminal": 0, "metrics": 0,
    # 1, the bottom of DESIGN.md: the pure engine and the store, with what sits beside them
    # (config is decoded with the engine's durations and limits; scenarios compile with it;
    # the package's face re-exports config)
    "engine": 1, "store": 1, "config": 1, "__init__": 1, "scenarios": 1, "optout": 1,
    "credential": 1,
    # 2, runtime: actors, router, sender, clock
    "runtime": 2,
    # 3, what runs on the runtime
    "gateways": 3, "http": 3, "outreach": 3, "buyers": 3, "authoring": 3, "media": 3,
    # 4, the top: the command line and the composition root
    "cli*": 4, "chat": 4, "server": 4, "__main__": 4,
}
LAYER_NAMES = {0: "foundation", 1: "engine/store", 2: "runtime", 3: "services", 4: "top"}

# Known cycles and upward imports, as (importer, imported) module pairs, each removed by the
# named part of issue 15 ("One pure turn, and rooms that show the architecture"). Delete an
# entry when its edge is gone; never add one: fix the import instead.
ALLOWED: dict[tuple[str, str], str] = {
    # --- the Services part (a frozen Services handed down instead of Server/Router): the API,
    # the app and campaigns read the Server
    ("intercept.http.api", "intercept.server"): "Services",
    ("intercept.http.app", "intercept.server"): "Services",
    ("intercept.outreach.campaigns", "intercept.server"): "Services",
    # --- the gateway-types part (webhook routes described as data the HTTP layer mounts):
    # the Twilio client and its webhooks import each other
    ("intercept.gateways.twilio.client", "intercept.gateways.twilio.webhooks"): "gateway types",
    # --- the one-turn part (campaigns send a start event through the router, config decodes
    # durations and windows once): config validates campaign windows and rates with outreach's
    ("intercept.config", "intercept.outreach.window"): "Duration type",
    # --- not yet assigned to a part of issue 15 (found by this test; reported to the merger)
    # the sender names the gateway interface, which lives in gateways/ above runtime
    ("intercept.runtime.sender", "intercept.gateways"): "unassigned: gateway interface",
}


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
    return LAYERS.get("cli*" if top.startswith("cli") else top)


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


def test_test_files_do_not_import_each_other():
    tests = {p.stem: p for p in TESTS.glob("*.py")}
    known = {stem: path for stem, path in tests.items()}
    found = [f"{p.name} imports {target}" for stem, p in sorted(tests.items())
             for target in imports_of(stem, p, known) if target.startswith("test_")]
    assert not found, ("move what test files share to tests/helpers.py or a fixture in "
                       "tests/conftest.py:\n  " + "\n  ".join(found))
