"""The CLI checks it reached the server of its own store: /healthz tells the store's random
id, and an API command compares it with the id of the store its config names before it sends
its token or its request."""

from __future__ import annotations

import sqlite3
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.gateways import SimGateway
from intercept.server import Server

from helpers import make_config, registry, serve_in_thread


@contextmanager
def live(tmp_path: Path, name: str):
    """A server with HTTP on a free port, its store at tmp_path/NAME.db: (its address, db)."""
    db = tmp_path / f"{name}.db"
    config = make_config(http={"enabled": True, "listen": "127.0.0.1:0"})
    server = Server(config, registry=registry(), gateway=SimGateway(), store_path=db)
    thread, token = serve_in_thread(server)
    try:
        (base,) = server.http_addresses
        yield base, db
    finally:
        trio.from_thread.run_sync(server.stop, trio_token=token)
        thread.join(30)


def store_id(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id FROM store_identity").fetchone()[0]


def config_for(tmp_path: Path, db: Path, base: str) -> Path:
    path = tmp_path / "cli.toml"
    path.write_text(f'[store]\npath = "{db}"\n[http]\nlisten = "{base.removeprefix("http://")}"\n')
    return path


def queue(*args: str):
    return CliRunner().invoke(main, ["advocate", "queue", *args])


def test_healthz_tells_the_store_id(tmp_path):
    with live(tmp_path, "a") as (base, db):
        ours = store_id(db)
        assert len(ours) == 16 and int(ours, 16) >= 0
        assert httpx.get(f"{base}/healthz").json()["store_id"] == ours


def test_a_command_refuses_the_server_of_another_store(tmp_path):
    with ExitStack() as stack:
        base_a, db_a = stack.enter_context(live(tmp_path, "a"))
        base_b, db_b = stack.enter_context(live(tmp_path, "b"))
        wrong = config_for(tmp_path, db_a, base_b)  # a's store, b's address
        result = queue("--config", str(wrong))
        assert result.exit_code == 1
        assert result.output == (
            f"Error: the server at {base_b} serves another store (id {store_id(db_b)}) than "
            f"{db_a} (id {store_id(db_a)}), the store.path of {wrong}: give the --config of "
            "the server you mean, or its address with --url.\n")
        result = queue("--config", str(wrong), "--url", base_b)  # named, but not a's server
        assert result.exit_code == 1 and "serves another store" in result.output
        result = CliRunner().invoke(main, ["scenario", "reload", "--config", str(wrong)])
        assert result.exit_code == 1 and "serves another store" in result.output
        right = config_for(tmp_path, db_a, base_a)
        result = queue("--config", str(right))
        assert result.exit_code == 0, result.output
        with sqlite3.connect(db_b) as conn:  # b never saw a's token or a request
            assert conn.execute("SELECT count(*) FROM audit WHERE action LIKE 'GET /api/queue%'"
                                ).fetchone() == (0,)
        with sqlite3.connect(db_a) as conn:
            assert conn.execute("SELECT count(*) FROM audit WHERE action LIKE 'GET /api/queue%'"
                                ).fetchone() == (1,)


def test_a_server_elsewhere_is_named_with_url(tmp_path):
    with live(tmp_path, "a") as (base, _):
        token = (tmp_path / "a.db.cli-token").read_text().strip()
        remote = config_for(tmp_path, tmp_path / "not-here.db", base)
        result = queue("--config", str(remote), "--token", token)  # http.listen, no store
        assert result.exit_code == 1
        assert f"there is no store at {tmp_path / 'not-here.db'}" in result.output
        assert "give the server's address with --url" in result.output
        result = queue("--config", str(remote), "--token", token, "--url", base)
        assert result.exit_code == 0, result.output
