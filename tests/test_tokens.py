"""`intercept token create | list | revoke`, and the local CLI's credential file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import time
from pathlib import Path

import click
import httpx
import pytest
import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.cli.options import api_token
from intercept.credential import credential_path
from intercept.gateways import SimGateway
from intercept.server import Server
from intercept.store.tokens import revoke_token

from helpers import make_config, registry, serve_in_thread

HTTP = {"enabled": True, "listen": "127.0.0.1:0"}


def token_cli(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, ["token", *args])


def test_a_token_is_made_listed_used_and_revoked(tmp_path):
    db = tmp_path / "t.db"
    server = Server(make_config(http=HTTP), registry=registry(), gateway=SimGateway(),
                    store_path=db)
    thread, trio_token = serve_in_thread(server)
    try:
        (base,) = server.http_addresses
        made = token_cli("create", "sam", "--role", "advocate", "--db", str(db))
        assert made.exit_code == 0, made.output
        secret = made.stdout.strip()
        assert secret.startswith("itc_") and len(secret) > 40
        assert "shown only this once" in made.stderr
        stored = sqlite3.connect(db).execute("SELECT name, role, digest FROM api_tokens "
                                             "WHERE name = 'sam'").fetchall()
        assert stored == [("sam", "advocate", hashlib.sha256(secret.encode()).hexdigest())]
        for file in (db, Path(f"{db}-wal")):  # only its hash is kept
            assert secret not in file.read_bytes().decode("latin-1")

        me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.json() == {"name": "sam", "role": "advocate"}  # at once, no restart
        for _ in range(300):  # the last use is written by the server's writer
            listed = token_cli("list", "--db", str(db))
            if "never" not in listed.stdout.splitlines()[-1]:
                break
            time.sleep(0.01)
        lines = listed.stdout.splitlines()
        assert lines[0].split() == ["NAME", "ROLE", "CREATED", "(UTC)", "LAST", "USED", "(UTC)"]
        assert [line.split()[:2] for line in lines[1:]] == [["local-cli", "admin"],
                                                            ["sam", "advocate"]]
        assert "never" not in lines[2]
        assert secret not in listed.output
        rows = [json.loads(line) for line in token_cli("list", "--json", "--db",
                                                       str(db)).stdout.splitlines()]
        assert [(r["name"], r["role"]) for r in rows] == [("local-cli", "admin"),
                                                         ("sam", "advocate")]

        again = token_cli("create", "sam", "--role", "viewer", "--db", str(db))
        assert again.exit_code == 1 and "a token named 'sam' exists already" in again.output
        bad = token_cli("create", "sam smith", "--role", "viewer", "--db", str(db))
        assert bad.exit_code == 1 and "token name 'sam smith': use 1 to 64" in bad.output
        boss = token_cli("create", "x", "--role", "boss", "--db", str(db))
        assert boss.exit_code == 2

        revoked = token_cli("revoke", "sam", "--db", str(db))
        assert revoked.exit_code == 0 and revoked.output.strip() == "token 'sam' revoked"
        me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 401  # at once
        twice = token_cli("revoke", "sam", "--db", str(db))
        assert twice.exit_code == 1 and "no token named 'sam'" in twice.output
    finally:
        trio.from_thread.run_sync(server.stop, trio_token=trio_token)
        thread.join(30)
    audit = sqlite3.connect(db).execute("SELECT actor, role, action, detail FROM audit "
                                        "WHERE role = 'cli' ORDER BY id").fetchall()
    assert [(a.startswith("cli:"), b, c, d) for a, b, c, d in audit] == [
        (True, "cli", "CLI intercept token create", "token 'sam' (advocate)"),
        (True, "cli", "CLI intercept token revoke", "token 'sam'")]


def test_token_commands_name_a_missing_store(tmp_path):
    for args in (["list"], ["revoke", "x"], ["create", "x", "--role", "admin"]):
        result = token_cli(*args, "--db", str(tmp_path / "none.db"))
        assert result.exit_code == 1 and f"no store at {tmp_path / 'none.db'}" in result.output
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("command", [[], ["create"], ["list"], ["revoke"]])
def test_every_token_command_has_examples(command):
    result = token_cli(*command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output


async def _start_and_stop(tmp_path: Path, config) -> None:
    server = Server(config, registry=registry(), gateway=SimGateway(),
                    store_path=tmp_path / "c.db")
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        server.stop()


async def test_the_first_start_writes_the_local_cli_token_0600(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="intercept.credential")
    config = make_config(http=HTTP)
    path = tmp_path / "c.db.cli-token"
    old = os.umask(0o022)  # a permissive umask does not loosen the file
    try:
        await _start_and_stop(tmp_path, config)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert secret.startswith("itc_")
    messages = [r.getMessage() for r in caplog.records]
    assert any(str(path) in m and "wrote an admin token" in m for m in messages)
    assert not any(secret in m for m in messages)
    db = sqlite3.connect(tmp_path / "c.db")
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert db.execute("SELECT name, role FROM api_tokens WHERE digest = ?",
                      (digest,)).fetchall() == [("local-cli", "admin")]

    caplog.clear()
    path.chmod(0o644)
    await _start_and_stop(tmp_path, config)  # later starts keep it (and say if it is exposed)
    assert path.read_text().strip() == secret
    assert any("uses the admin token in" in r.getMessage() for r in caplog.records)
    assert any("can be read by other users" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)
    path.chmod(0o600)

    with db:
        revoke_token(db, "local-cli")  # revoked: a restart does not bring it back
    caplog.clear()
    await _start_and_stop(tmp_path, config)
    assert path.read_text().strip() == secret
    assert any("holds a token this store does not know" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)

    path.unlink()  # deleted: the next start makes a new one
    await _start_and_stop(tmp_path, config)
    fresh = path.read_text().strip()
    assert fresh != secret
    assert db.execute("SELECT digest FROM api_tokens WHERE name = 'local-cli'").fetchall() == [
        (hashlib.sha256(fresh.encode()).hexdigest(),)]


def test_where_the_cli_finds_its_token(tmp_path):
    config = make_config(store={"path": str(tmp_path / "s.db")})
    with pytest.raises(click.ClickException, match=r"no API token: give one with --token or "
                       r"INTERCEPT_API_TOKEN .* writes one to .*s\.db\.cli-token"):
        api_token(config, None)
    (tmp_path / "s.db.cli-token").write_text("itc_from-the-file\n")
    assert api_token(config, None) == ("itc_from-the-file", str(tmp_path / "s.db.cli-token"))
    assert api_token(config, "given") == ("given", "--token or INTERCEPT_API_TOKEN")
    config = make_config(api={"token": "from-config"})
    assert api_token(config, None) == ("from-config", "api.token")
    config = make_config(api={"cli_token_file": "secret/cli.token"})
    config.source = str(tmp_path / "etc" / "intercept.toml")
    assert credential_path(config) == tmp_path / "etc" / "secret" / "cli.token"
