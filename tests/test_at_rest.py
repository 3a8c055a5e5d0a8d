"""Data at rest: private file modes whatever the umask, the SQLCipher store key, online backups
(taken while writing, scheduled, restored)."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.foundation.metrics import Metrics
from intercept.foundation.private import tighten_tree
from intercept.store import Store, StoreError, connect
from intercept.store.backup import SCHEDULED, backup, check_backup, restore, run_schedule
from intercept.store.opening import open_connection, sqlcipher_available
from intercept.store.reads import Reads

from helpers import make_config, running

NUMBER = "+12065550199"


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path | str) -> int:
    return os.stat(path).st_mode & 0o777


@contextlib.contextmanager
def holding_open(path: Path) -> Iterator[None]:
    """Another process with the store open (as the server has it)."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('SELECT count(*) FROM conversations').fetchone(); print('open', "
         "flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "open\n"
        yield
    finally:
        child.communicate("")


def add_row(db_path: Path, key: str = "", number: str = NUMBER) -> None:
    conn = open_connection(db_path, key, isolation_level=None)
    conn.execute("INSERT INTO conversations (our_number, their_number, status) "
                  "VALUES ('+12065550100', ?, 'active')", (number,))
    conn.close()


def test_store_files_are_private_whatever_the_umask(tmp_path, loose_umask):
    path = tmp_path / "var" / "intercept.db"
    store = Store(path)
    add_row(path)
    assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    assert [mode(p) for p in (path, f"{path}-wal", f"{path}-shm")] == [0o600] * 3
    assert mode(path.parent) == 0o700  # a folder it made
    store.shutdown()


def test_a_readable_store_is_tightened_at_open_with_a_log_line(tmp_path, loose_umask, caplog):
    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    assert mode(path) == 0o644
    with caplog.at_level(logging.INFO, logger="intercept.foundation.private"):
        connect(path).conn.close()
    assert mode(path) == 0o600
    assert f"tightened {path} from 0644 to 0600" in caplog.text


def test_media_folders_and_files_are_tightened(tmp_path, loose_umask):
    media = tmp_path / "media"
    (media / "ab").mkdir(parents=True)
    (media / "ab" / "abcd").write_bytes(b"photo")
    assert mode(media / "ab") == 0o755 and mode(media / "ab" / "abcd") == 0o644
    assert tighten_tree(media) == 3
    assert (mode(media), mode(media / "ab"), mode(media / "ab" / "abcd")) == (0o700, 0o700, 0o600)
    assert tighten_tree(media) == 0


# -- backups


def test_a_backup_is_private_and_restores(tmp_path, loose_umask):
    path = tmp_path / "intercept.db"
    connect(path).conn.close()
    add_row(path)
    info = backup(path, tmp_path / "backups" / "b.db")
    assert info.conversations == 1
    assert mode(info.path) == 0o600 and mode(info.path.parent) == 0o700
    with pytest.raises(StoreError, match="the file exists; give a new file"):
        backup(path, info.path)
    add_row(path, number="+13125550177")
    server = connect(path)  # the server is running: refused, nothing touched
    with pytest.raises(StoreError, match=r"open in another process .* stop the server first"):
        restore(info.path, path)
    server.conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backups", "intercept.db"]
    kept = restore(info.path, path, now=0)
    assert kept == tmp_path / "intercept.db.replaced-19700101T000000Z" and mode(kept) == 0o600
    assert not Path(f"{path}-wal").exists()
    conn = open_connection(path)
    assert conn.execute("SELECT their_number FROM conversations").fetchall() == [(NUMBER,)]
    assert mode(path) == 0o600
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"junk.db: it is not a usable backup .*damaged"):
        restore(tmp_path / "junk.db", path)


def test_a_backup_taken_while_writing_holds_whole_transactions(tmp_path):
    """A writer commits 50 audit rows per transaction while backups are taken: each backup is
    intact and holds only whole transactions, at least all those committed before it began."""
    path = tmp_path / "busy.db"
    connect(path).conn.close()
    stop = threading.Event()
    committed = [0]

    def write() -> None:
        conn = open_connection(path, isolation_level=None)
        batch = 0
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO audit (at, actor, detail) VALUES (?, 'w', ?)",
                             [(time.time(), str(batch))] * 50)
            conn.execute("COMMIT")
            batch += 1
            committed[0] = batch
        conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while committed[0] < 5:
            time.sleep(0.001)
        for i in range(5):
            before = committed[0]
            copy = backup(path, tmp_path / f"copy{i}.db")
            conn = sqlite3.connect(copy.path)
            rows = conn.execute("SELECT detail, count(*) FROM audit GROUP BY detail").fetchall()
            assert all(n == 50 for _, n in rows)
            assert sorted(int(d) for d, _ in rows) == list(range(len(rows)))
            assert len(rows) >= before
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            conn.close()
    finally:
        stop.set()
        writer.join()


async def test_scheduled_backups_keep_the_newest(tmp_path, autojump_clock):
    path = tmp_path / "intercept.db"
    connect(path).conn.close()
    folder = tmp_path / "backups"
    (folder).mkdir()
    (folder / "mine.db").write_bytes(b"not ours to delete")
    metrics = Metrics()
    with trio.move_on_after(3 * 3600 + 60):
        await run_schedule(path, folder, every=3600, keep=2, metrics=metrics,
                           clock=lambda: 1_700_000_000 + trio.current_time(), threaded=False)
    assert metrics.backup_last_success._value.get() == 1_700_000_000 + 3 * 3600
    assert metrics.backups.labels("ok")._value.get() == 3
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["intercept-20231115T001320Z.db", "intercept-20231115T011320Z.db",
                     "mine.db"]
    assert all(mode(folder / n) == 0o600 for n in names[:2])


async def test_the_server_takes_scheduled_backups(tmp_path, autojump_clock):
    config = make_config(store={"backup_every": "1h", "backup_keep": 2})
    async with running(tmp_path, config, db="s.db") as (server, _):
        await trio.sleep(3 * 3600 + 60)
        assert server.metrics.backups.labels("ok")._value.get() == 3
    names = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert len(names) == 2 and all(SCHEDULED.fullmatch(n) for n in names)
    assert mode(tmp_path / "backups") == 0o700
    assert check_backup(tmp_path / "backups" / names[-1])[1] > 0


async def test_a_failed_scheduled_backup_is_logged_and_counted(tmp_path, autojump_clock,
                                                               caplog):
    metrics = Metrics()
    with trio.move_on_after(3600 + 60):
        await run_schedule(tmp_path / "gone.db", tmp_path / "b", every=3600, keep=2,
                           metrics=metrics, threaded=False)
    assert metrics.backups.labels("failed")._value.get() == 1
    assert f"scheduled backup failed: no store at {tmp_path / 'gone.db'}" in caplog.text


def test_backup_and_restore_commands(tmp_path):
    path = tmp_path / "intercept.db"
    connect(path).conn.close()
    add_row(path)
    runner = CliRunner()
    out = tmp_path / "b.db"
    made = runner.invoke(main, ["backup", "--db", str(path), "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert f"backed up {path} to {out}" in made.output and "1 conversations" in made.output
    refused = runner.invoke(main, ["restore", "--db", str(path), str(out)])
    assert refused.exit_code == 1 and "give --force" in refused.output
    fresh = tmp_path / "new" / "intercept.db"
    done = runner.invoke(main, ["restore", "--db", str(fresh), str(out)])
    assert done.exit_code == 0, done.output
    assert check_backup(fresh) == (1, check_backup(out)[1])
    with holding_open(path):
        running_server = runner.invoke(main, ["restore", "--db", str(path), "--force", str(out)])
    assert running_server.exit_code == 1
    assert "it is open in another process (is the server running?)" in running_server.output
    forced = runner.invoke(main, ["restore", "--db", str(path), "--force", str(out)])
    assert forced.exit_code == 0 and "the store it replaced is kept as" in forced.output


# -- SQLCipher

needs_sqlcipher = pytest.mark.skipif(not sqlcipher_available(),
                                     reason="sqlcipher3-binary is not installed")


@needs_sqlcipher
async def test_an_encrypted_store_hides_numbers_and_needs_its_key(tmp_path):
    path = tmp_path / "secret.db"
    store = Store(path, key="correct horse")
    add_row(path, key="correct horse")
    store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = path.read_bytes()
    assert not raw.startswith(b"SQLite format 3") and NUMBER.encode() not in raw
    reads = Reads(path, key="correct horse")
    rows = await reads.run(lambda c: c.execute("SELECT their_number FROM conversations")
                           .fetchall())
    assert rows == [(NUMBER,)]
    reads.close()
    with pytest.raises(StoreError, match="it is not a readable SQLite database; if it is "
                       "encrypted, give its key"):
        open_connection(path)
    with pytest.raises(StoreError, match=r"the store key .* is wrong"):
        open_connection(path, "wrong")
    copy = backup(path, tmp_path / "b.db", key="correct horse")
    assert not copy.path.read_bytes().startswith(b"SQLite format 3")
    assert check_backup(copy.path, key="correct horse")[0] == 1
    store.shutdown()


@needs_sqlcipher
def test_the_cli_opens_an_encrypted_store_with_its_key(tmp_path):
    path = tmp_path / "intercept.db"
    connect(path, key="k3y").conn.close()
    add_row(path, key="k3y")
    (tmp_path / "intercept.toml").write_text('[store]\npath = "intercept.db"\n'
                                             'key_file = "store.key"\n')
    (tmp_path / "store.key").write_text("k3y\n")
    runner = CliRunner()
    out = tmp_path / "b.db"
    args = ["backup", "--config", str(tmp_path / "intercept.toml"), "--db", str(path),
            "--out", str(out)]
    assert runner.invoke(main, args).exit_code == 0
    missing = runner.invoke(main, [*args[:-1], str(tmp_path / "c.db")],
                            env={"INTERCEPT_STORE_KEY": ""})
    assert missing.exit_code == 0  # the empty variable leaves key_file in charge
    wrong = runner.invoke(main, [*args[:-1], str(tmp_path / "d.db")],
                          env={"INTERCEPT_STORE_KEY": "nope"})
    assert wrong.exit_code == 1 and "the store key" in wrong.output and "is wrong" in wrong.output


def test_the_systemd_unit_keeps_files_private_and_allows_many_sockets():
    unit = (Path(__file__).resolve().parent.parent / "config" / "intercept.service").read_text()
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0].splitlines()
    assert "UMask=0077" in service
    limit = next(line for line in service if line.startswith("LimitNOFILE="))
    assert int(limit.split("=", 1)[1]) >= 65536


@needs_sqlcipher
async def test_the_server_serves_from_an_encrypted_store(tmp_path, autojump_clock):
    from helpers import OUR

    config = make_config(store={"key": "server key"})
    async with running(tmp_path, config, db="enc.db") as (server, phones):
        await server.gateway.inject(their_number=NUMBER, our_number=OUR,  # type: ignore[attr-defined]
                                    text="hello")
        await phones.wait_for(1)
        app_reads = Reads(server.store.path, key=server.store.key)
        count = await app_reads.run(lambda c: c.execute("SELECT count(*) FROM inbound")
                                    .fetchone()[0])
        app_reads.close()
    assert count == 1
    assert not (tmp_path / "enc.db").read_bytes().startswith(b"SQLite format 3")
    with pytest.raises(StoreError, match="give its key"):
        Store(tmp_path / "enc.db")


def test_store_key_and_backup_settings_are_checked(tmp_path):
    from intercept.config import config_from_dict, store_key
    from intercept.errors import ConfigError

    with pytest.raises(ConfigError, match="store: backup_every: '30s' is less than a minute"):
        config_from_dict({"store": {"backup_every": "30s"}}, environ={})
    with pytest.raises(ConfigError, match="backup_every: expected a duration"):
        config_from_dict({}, environ={"INTERCEPT_STORE_BACKUP_EVERY": "often"})
    with pytest.raises(ConfigError, match="store: backup_keep: keep at least 1 backup"):
        config_from_dict({"store": {"backup_keep": 0}}, environ={})
    (tmp_path / "key").write_text("from the file\n")
    source = str(tmp_path / "intercept.toml")
    from_file = config_from_dict({"store": {"key_file": "key"}}, source=source, environ={})
    assert store_key(from_file) == "from the file"
    from_env = config_from_dict({"store": {"key_file": "key"}}, source=source,
                                environ={"INTERCEPT_STORE_KEY": "from the environment"})
    assert store_key(from_env) == "from the environment"
    missing = config_from_dict({"store": {"key_file": "nope"}}, source=source, environ={})
    with pytest.raises(ConfigError, match=r"store\.key_file: cannot read"):
        store_key(missing)


@needs_sqlcipher
def test_a_plain_store_is_encrypted_in_place(tmp_path, loose_umask):
    path = tmp_path / "intercept.db"
    connect(path).conn.close()
    add_row(path)
    runner = CliRunner()
    args = ["encrypt", "--db", str(path)]
    unkeyed = runner.invoke(main, args, env={"INTERCEPT_STORE_KEY": ""})
    assert unkeyed.exit_code == 1 and "no store key is set" in unkeyed.output
    with holding_open(path):  # the server, in another process: refused
        busy = runner.invoke(main, args, env={"INTERCEPT_STORE_KEY": "new key"})
    assert busy.exit_code == 1 and "stop the server first" in busy.output
    done = runner.invoke(main, args, env={"INTERCEPT_STORE_KEY": "new key"})
    assert done.exit_code == 0, done.output
    kept = next(tmp_path.glob("intercept.db.plain-*"))
    assert f"the plain original is kept as {kept}" in done.output
    assert not path.read_bytes().startswith(b"SQLite format 3") and mode(path) == 0o600
    db = connect(path, key="new key")  # migrations see the schema version it had
    assert db.execute("SELECT their_number FROM conversations").fetchall() == [(NUMBER,)]
    db.conn.close()
    again = runner.invoke(main, args, env={"INTERCEPT_STORE_KEY": "new key"})
    assert again.exit_code == 1 and "if it is encrypted, give its key" in again.output
