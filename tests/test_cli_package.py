"""The command line is the package intercept/cli: command modules that share one options
module and never import each other, and no SQL of their own (queries and audit rows go through
intercept/store)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import intercept
from intercept.cli import main
from intercept.store import connect
from intercept.store.opening import open_connection, sqlcipher_available

INTERCEPT = Path(intercept.__file__).parent
CLI = INTERCEPT / "cli"
# Today's package, and the top-level cli*.py modules it replaced (so a return is caught).
CLI_FILES = sorted([*CLI.glob("*.py"), *INTERCEPT.glob("cli*.py")])
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|BEGIN|PRAGMA|CREATE|DROP)\b")

needs_sqlcipher = pytest.mark.skipif(not sqlcipher_available(), reason="needs sqlcipher3")


def module_name(path: Path) -> str:
    parts = path.relative_to(INTERCEPT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The intercept modules `path` imports, however spelled (relative, absolute, in a
    function); `from . import a` counts as importing the module `a`."""
    name = module_name(path)
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("intercept"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if not module.startswith("intercept"):
                continue
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def is_cli(module: str) -> bool:
    return module == "intercept.cli" or module.startswith(("intercept.cli.", "intercept.cli_"))


def test_the_command_line_is_one_package():
    assert (CLI / "__init__.py").is_file()
    assert [p.name for p in INTERCEPT.glob("cli*.py")] == []


@pytest.mark.parametrize("path", CLI_FILES, ids=lambda p: module_name(p))
def test_a_command_module_imports_only_the_shared_options(path):
    if path == CLI / "__init__.py":
        pytest.skip("the main group registers every command module")
    known = {module_name(p) for p in CLI_FILES}
    others = {m for m in imported(path) if is_cli(m) and m in known}
    assert others <= {"intercept.cli.options"}, (
        f"{module_name(path)} imports {sorted(others - {'intercept.cli.options'})}: share it "
        "through intercept/cli/options.py instead")


@pytest.mark.parametrize("path", CLI_FILES, ids=lambda p: module_name(p))
def test_the_command_line_runs_no_sql(path):
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany", "executescript")):
            found.append(f"line {node.lineno}: .{node.func.attr}()")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and SQL.match(node.value)):
            found.append(f"line {node.lineno}: {node.value[:40]!r}")
    assert found == [], f"{module_name(path)} runs SQL (move it into intercept/store): {found}"


def test_a_change_and_its_audit_row_are_stored_together(tmp_path):
    from intercept.store.audit import audited, insert_audit

    conn = connect(tmp_path / "s.db").conn

    def fails(c):
        insert_audit(c, actor="cli:x", action="inside", detail="d")
        raise ValueError("refused")

    with pytest.raises(ValueError):
        audited(conn, fails, actor="cli:x", action="after", detail="d")
    assert audited(conn, lambda c: False, record=bool, actor="cli:x", action="skip",
                   detail="d") is False
    assert audited(conn, lambda c: 7, actor="cli:x", action="kept", detail="d") == 7
    rows = conn.execute("SELECT actor, role, action, status FROM audit").fetchall()
    assert rows == [("cli:x", "cli", "kept", 200)]
    conn.close()


@needs_sqlcipher
def test_buyers_list_audits_into_an_encrypted_store(tmp_path):
    path = tmp_path / "intercept.db"
    connect(path, key="k3y").conn.close()
    (tmp_path / "intercept.toml").write_text('[store]\npath = "intercept.db"\n'
                                             'key_file = "store.key"\n')
    (tmp_path / "store.key").write_text("k3y\n")
    result = CliRunner().invoke(main, ["buyers", "list", "--config",
                                       str(tmp_path / "intercept.toml"), "--db", str(path)])
    assert result.exit_code == 0, (result.output, result.exception)
    conn = open_connection(path, "k3y", readonly=True)
    rows = conn.execute("SELECT role, action, detail FROM audit").fetchall()
    conn.close()
    assert rows == [("cli", "CLI intercept buyers list", "0 profiles with masked numbers")]


@needs_sqlcipher
def test_token_commands_open_an_encrypted_store_with_its_key(tmp_path):
    path = tmp_path / "intercept.db"
    connect(path, key="k3y").conn.close()
    (tmp_path / "intercept.toml").write_text('[store]\npath = "intercept.db"\n'
                                             'key_file = "store.key"\n')
    (tmp_path / "store.key").write_text("k3y\n")
    where = ["--config", str(tmp_path / "intercept.toml"), "--db", str(path)]
    made = CliRunner().invoke(main, ["token", "create", "sam", "--role", "viewer", *where])
    assert made.exit_code == 0, (made.output, made.exception)
    listed = CliRunner().invoke(main, ["token", "list", "--json", *where])
    assert listed.exit_code == 0 and '"name": "sam"' in listed.output
    conn = open_connection(path, "k3y", readonly=True)
    rows = conn.execute("SELECT role, action, detail FROM audit").fetchall()
    conn.close()
    assert rows == [("cli", "CLI intercept token create", "token 'sam' (viewer)")]


@pytest.mark.parametrize(("args", "role"), [
    (["purge"], "admin role"), (["campaign", "start"], "admin role"),
    (["campaign", "pause"], "admin role"), (["advocate", "assign"], "admin role"),
    (["advocate", "reply"], "advocate or admin role"),
    (["campaign", "status"], "viewer, advocate or admin role")])
def test_the_token_help_names_the_role_the_command_needs(args, role):
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0
    (line,) = [x for x in result.output.splitlines() if "--token" in x]
    assert f"Your API token ({role})." in " ".join(line.split())
