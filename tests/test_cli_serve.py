"""`intercept serve` refuses bad set-ups with a sentence, not a traceback."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from intercept.cli import main
from intercept.foundation.resources import bundled_root

CONFIG = str(bundled_root() / "config" / "intercept.toml")


def test_serve_names_the_busy_http_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--config", CONFIG], env={
            "INTERCEPT_HTTP_LISTEN": f"127.0.0.1:{port}",
            "INTERCEPT_STORE_PATH": str(tmp_path / "x.db")})
    assert result.exit_code == 1
    assert f"http.listen: cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_serve_names_a_store_it_cannot_open(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["serve", "--config", CONFIG], env={
        "INTERCEPT_STORE_PATH": str(blocker / "x.db")})
    assert result.exit_code == 1
    assert f"cannot open the store {blocker / 'x.db'}" in result.output


def test_serve_names_a_bad_config_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[store]\npaht = "x.db"\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(config)])
    assert result.exit_code == 1
    assert "bad.toml: store.paht: unknown field 'paht'" in result.output


def test_a_store_from_a_newer_intercept_is_refused(tmp_path):
    import sqlite3

    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    result = CliRunner().invoke(main, ["serve", "--config", CONFIG], env={
        "INTERCEPT_STORE_PATH": str(db)})
    assert result.exit_code == 1
    assert "schema version 999, newer than this Intercept" in result.output
