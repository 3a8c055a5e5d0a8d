"""A store that cannot commit (disk full, I/O error) is waited out, never a crash or a loss.

The disk fills in two ways: SQLite's own limit (`PRAGMA max_page_count` set to the current size,
so any write that grows the file fails with SQLITE_FULL, as on a full disk) and a real tmpfs
that runs out of space.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio
from click.testing import CliRunner

from intercept.cli import main
from intercept.engine import Machine, compile_text
from intercept.foundation.metrics import Metrics
from intercept.foundation.resources import bundled_root
from intercept.gateways import SimGateway
from intercept.scenarios import ScenarioRegistry
from intercept.server import Server
from intercept.store import CommitStep, SetConversationStatus, Store, StoreUnavailable
from intercept.store.lock import StoreLock

from helpers import ECHO, OUR, Blob, make_config, registry, running

BUYERS = [f"+1206555{2000 + i:04d}" for i in range(6)]
PADDING = "x" * 1500  # each message needs new pages, so a full store refuses it


def fill(store: Store) -> None:
    """The disk is full: the file may not grow by one page."""
    (pages,) = store.db.conn.execute("PRAGMA page_count").fetchone()
    store.db.conn.execute(f"PRAGMA max_page_count = {pages}")


def free(store: Store) -> None:
    """Space comes back."""
    store.db.conn.execute("PRAGMA max_page_count = 1000000000")


class FullAtCommit:
    """The store's connection, except that every COMMIT fails with SQLITE_FULL while `full`
    (a disk with no room at all: even writes that fit in existing pages fail)."""

    def __init__(self, store: Store):
        self.conn = store.db.conn
        self.full = True
        store.db.conn = self

    def __getattr__(self, name):
        return getattr(self.conn, name)

    def cursor(self):
        return _Cursor(self, self.conn.cursor())


class _Cursor:
    def __init__(self, owner: FullAtCommit, cursor):
        self.owner, self.cursor = owner, cursor

    def __getattr__(self, name):
        return getattr(self.cursor, name)

    def execute(self, sql, *args):
        if self.owner.full and sql == "COMMIT":
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = 13
            raise error
        return self.cursor.execute(sql, *args)


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def test_the_writer_keeps_what_it_cannot_commit_and_retries_with_backoff(
        tmp_path, autojump_clock):
    metrics = Metrics()
    store = Store(tmp_path / "s.db", threaded=False, metrics=metrics)
    committed: list[float] = []

    async def write() -> None:
        await store.call(Blob(20_000))
        committed.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        fill(store)
        nursery.start_soon(write)
        await trio.sleep(30)
        assert committed == []
        assert store.failing == "disk full"
        assert sample(metrics, "intercept_store_failing") == 1
        attempts = sample(metrics, "intercept_store_failures_total", {"kind": "disk full"})
        assert 5 <= attempts <= 25  # backoff (0.05 s doubling to 2 s), not a busy loop
        with pytest.raises(StoreUnavailable, match="disk full"):
            await store.call(Blob(10), refusable=True)  # intake is refused at once
        free(store)
        await trio.sleep(3)
        assert len(committed) == 1
        assert store.failing is None
        assert sample(metrics, "intercept_store_failing") == 0
        store.close()
    assert store.query("SELECT count(*) FROM audit") == [(1,)]  # the refused one is not there
    store.shutdown()


async def test_a_store_still_failing_at_shutdown_gives_up_after_the_grace(
        tmp_path, autojump_clock):
    store = Store(tmp_path / "s.db", threaded=False, close_grace=10)
    outcome: list[str] = []

    async def write() -> None:
        try:
            await store.call(Blob(20_000))
            outcome.append("committed")
        except StoreUnavailable:
            outcome.append("refused")

    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        fill(store)
        nursery.start_soon(write)
        await trio.sleep(5)
        store.close()
        started = trio.current_time()
    assert outcome == ["refused"]
    assert 10 <= trio.current_time() - started <= 13
    store.shutdown()


async def inject_all(server: Server, texts: dict[str, tuple[str, str]], acked: set[str]
                     ) -> list[str]:
    """The network delivers every message not acknowledged yet; returns those refused."""
    refused = []
    for gateway_id, (buyer, text) in texts.items():
        if gateway_id in acked:
            continue
        try:
            await server.gateway.inject(their_number=buyer, our_number=OUR, text=text,
                                        gateway_id=gateway_id)
        except StoreUnavailable:
            refused.append(gateway_id)
        else:
            acked.add(gateway_id)
    return refused


async def settle(server: Server) -> None:
    for (conversation_id, count) in server.store.query(
            "SELECT id, inbound_count FROM conversations"):
        await server.settled(conversation_id, count)


def assert_each_answered_once(phones, texts: dict[str, tuple[str, str]]) -> None:
    got = Counter((m.their_number, m.text) for m in phones.all)
    want = Counter((buyer, f"re: {text}") for buyer, text in texts.values())
    assert got == want


async def test_a_full_disk_refuses_intake_and_loses_nothing(tmp_path, autojump_clock):
    """Messages arrive while the disk is full: the acknowledged ones are answered once, the
    others are refused in the gateway's retry form and answered once when they come back."""
    texts = {f"m{i}": (BUYERS[i % len(BUYERS)], f"{i} {PADDING}") for i in range(40)}
    async with running(tmp_path) as (server, phones):
        acked: set[str] = set()
        first = dict(list(texts.items())[:3])
        assert await inject_all(server, first, acked) == []
        await settle(server)
        fill(server.store)
        refused = await inject_all(server, texts, acked)
        assert refused, "the full store took every message"
        assert server.store.failing == "disk full"
        health = server.health()
        assert health["status"] == "failing" and health["store"] == "failing"
        assert health["store_failure"] == "disk full"
        assert sample(server.metrics, "intercept_store_failing") == 1
        await trio.sleep(120)  # actors wait for their commits; nothing is parked
        assert sample(server.metrics, "intercept_actor_crashes_total") == 0
        free(server.store)
        await trio.sleep(5)
        # The kept writes commit now; when every write left was refused intake, the store
        # says "failing" until its next commit: the gateway's redelivery.
        while await inject_all(server, texts, acked):  # the network delivers them again
            await trio.sleep(1)
        assert server.store.failing is None and server.health()["store"] == "ok"
        await settle(server)
        await trio.sleep(5)
        assert_each_answered_once(phones, texts)
        assert server.store.query("SELECT count(*) FROM inbound") == [(len(texts),)]
        assert server.store.query(
            "SELECT count(*) FROM conversations WHERE status = 'parked' OR crashes > 0"
        ) == [(0,)]
        assert sample(server.metrics, "intercept_conversations_parked_total") == 0
        assert sample(server.metrics, "intercept_store_failures_total",
                      {"kind": "disk full"}) > 0


# -- a real disk that fills up


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "4m"):
    where.mkdir()
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                 str(where)], capture_output=True, text=True, check=False)
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_disk(folder: Path) -> Path:
    """Write a file until the disk is full; return it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        chunk = b"\0" * 4096
        while True:
            os.write(fd, chunk)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


async def test_a_real_full_disk_is_waited_out(tmp_path, autojump_clock):
    texts = {f"t{i}": (BUYERS[i % len(BUYERS)], f"{i} {PADDING}") for i in range(30)}
    with small_tmpfs(tmp_path / "disk") as disk:
        async with running(disk) as (server, phones):
            acked: set[str] = set()
            assert await inject_all(server, dict(list(texts.items())[:2]), acked) == []
            await settle(server)
            filler = fill_disk(disk)
            refused = await inject_all(server, texts, acked)
            assert refused, "the full disk took every message"
            assert server.store.failing is not None
            await trio.sleep(60)
            assert sample(server.metrics, "intercept_actor_crashes_total") == 0
            filler.unlink()
            await trio.sleep(5)
            while await inject_all(server, texts, acked):
                await trio.sleep(1)
            await settle(server)
            await trio.sleep(5)
            assert server.store.failing is None
            assert_each_answered_once(phones, texts)
            assert server.store.query(
                "SELECT count(*) FROM conversations WHERE status = 'parked'") == [(0,)]


# -- over HTTP: the simulator's endpoint and /healthz


async def test_http_intake_answers_503_with_retry_after_and_healthz_says_failing(tmp_path):
    config = make_config(http={"enabled": True, "listen": "127.0.0.1:0"})
    gateway = SimGateway(receipts=False)
    server = Server(config, registry=registry(), gateway=gateway,
                    store_path=tmp_path / "h.db", threaded_store=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        (base,) = server.http_addresses
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            assert (await client.get("/healthz")).status_code == 200
            fill(server.store)
            statuses = []
            for i in range(20):
                r = await client.post("/sim/messages", json={
                    "from": BUYERS[0], "to": OUR, "text": f"{i} {PADDING}", "id": f"h{i}"})
                statuses.append(r.status_code)
                if r.status_code == 503:
                    break
            assert statuses[-1] == 503, statuses
            assert int(r.headers["retry-after"]) >= 1
            assert "the store cannot commit now (disk full)" in r.json()["error"]
            health = await client.get("/healthz")
            assert health.status_code == 503
            assert health.json()["store"] == "failing"
            assert health.json()["store_failure"] == "disk full"
            free(server.store)
            # the provider retries after Retry-After: that commit succeeds, health follows
            with trio.fail_after(10):
                while (await client.post("/sim/messages", json={
                        "from": BUYERS[0], "to": OUR, "text": "again",
                        "id": f"h{len(statuses) - 1}"})).status_code != 200:
                    await trio.sleep(0.2)
            assert (await client.get("/healthz")).json()["store"] == "ok"
        server.stop()


def test_fault_kinds_are_named():
    import sqlite3

    from intercept.store.faults import fault_kind, is_corrupt

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    ioerr = sqlite3.OperationalError("disk I/O error")
    ioerr.sqlite_errorcode = 10 | (3 << 8)  # SQLITE_IOERR_WRITE
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    readonly.sqlite_errorcode = 8
    constraint = sqlite3.IntegrityError("UNIQUE constraint failed")
    constraint.sqlite_errorcode = 19 | (8 << 8)
    corrupt = sqlite3.DatabaseError("database disk image is malformed")
    corrupt.sqlite_errorcode = 11
    assert [fault_kind(e) for e in (full, ioerr, readonly, constraint, corrupt)] == [
        "disk full", "I/O error", "read-only", None, None]
    assert is_corrupt(corrupt) and not is_corrupt(full)
    assert fault_kind(OSError(os.strerror(28))) is None  # an op's own error: fails that op


# -- the actor boundary


class Crashing(Machine):
    """The echo machine, except that a message "boom" raises (a bug in the engine, say)."""

    def step(self, state, event, now):
        if getattr(event, "text", "") == "boom":
            raise RuntimeError("engine bug")
        return super().step(state, event, now)


async def test_the_crash_path_never_raises_out_of_the_supervisor(tmp_path, autojump_clock):
    machine = compile_text(ECHO)
    reg = ScenarioRegistry([Crashing(machine.name, machine.version, machine.start,
                                     machine.nodes)])
    async with running(tmp_path, reg=reg) as (server, phones):
        real = server.store.call

        async def call(op, **options):
            if isinstance(op, SetConversationStatus):  # recording the crash fails too
                raise StoreUnavailable("disk full")
            return await real(op, **options)

        server.store.call = call
        await server.gateway.inject(their_number=BUYERS[0], our_number=OUR, text="boom")
        ok = await server.gateway.inject(their_number=BUYERS[1], our_number=OUR, text="hello")
        await server.settled(ok.conversation_id, ok.conv_seq)
        await trio.sleep(10)
        assert phones.by_number[BUYERS[1]] == ["re: hello"]
        assert sample(server.metrics, "intercept_actor_crashes_total") == 1
        assert sample(server.metrics, "intercept_conversations_parked_total") == 0


async def test_store_errors_do_not_count_toward_max_crashes(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        real = server.store.call
        failures = [5]  # more than max_crashes (3)

        async def call(op, **options):
            if isinstance(op, CommitStep) and failures[0]:
                failures[0] -= 1
                raise StoreUnavailable("I/O error")
            return await real(op, **options)

        server.store.call = call
        hi = await server.gateway.inject(their_number=BUYERS[0], our_number=OUR, text="hi")
        await server.settled(hi.conversation_id, hi.conv_seq)
        assert failures == [0]
        assert phones.by_number[BUYERS[0]] == ["re: hi"]
        assert sample(server.metrics, "intercept_actor_crashes_total") == 0
        assert server.store.query("SELECT status, crashes FROM conversations") == [("active", 0)]


# -- one server per store; a damaged store


CONFIG = str(bundled_root() / "config" / "intercept.toml")


def serve(store: Path):
    return CliRunner().invoke(main, ["serve", "--config", CONFIG], env={
        "INTERCEPT_STORE_PATH": str(store), "INTERCEPT_HTTP_LISTEN": "127.0.0.1:0"})


def test_a_second_server_on_the_same_store_exits_naming_the_first(tmp_path):
    store = tmp_path / "one.db"
    with StoreLock(store):  # the first server holds it (this process)
        result = serve(store)
        assert (tmp_path / "one.db.lock").read_text().strip() == str(os.getpid())
    assert result.exit_code == 1
    assert (f"the store {store} is in use by another Intercept server (process {os.getpid()}, "
            f"lock file {store}.lock)") in result.output
    assert "Traceback" not in result.output
    assert not store.exists()  # refused before it opened the store (no migration, no campaign)
    with StoreLock(store):  # released when the holder stops: the next one takes it
        pass


@pytest.mark.slow
def test_a_second_intercept_serve_process_is_refused(tmp_path):
    """Two real processes: the second exits at once with the first one's pid."""
    import signal
    import sys

    store = tmp_path / "two.db"
    env = {**os.environ, "INTERCEPT_STORE_PATH": str(store),
           "INTERCEPT_HTTP_LISTEN": "127.0.0.1:0"}
    command = [sys.executable, "-m", "intercept", "serve", "--config", CONFIG]
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stderr:  # wait until it serves
            if "intercept: serving" in line:
                break
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert second.returncode == 1
    assert f"in use by another Intercept server (process {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr


def make_store(path: Path, rows: int = 0) -> None:
    from intercept.store import connect

    db = connect(path)
    conn = db.conn
    conn.execute("BEGIN")
    for i in range(rows):
        conn.execute("INSERT INTO conversations (our_number, their_number, status, created_at, "
                     "updated_at) VALUES ('+12065550100', ?, 'ended', 0, 0)",
                     (f"+1206555{i:04d}",))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def zero_pages(path: Path, first: int, count: int) -> None:
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    data[size * first:size * (first + count)] = bytes(size * count)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["zeroed pages", "zeroed file", "truncated",
                                    "not a database"])
def test_a_damaged_store_is_one_sentence(tmp_path, damage):
    store = tmp_path / "damaged.db"
    make_store(store, rows=20_000 if damage == "zeroed pages" else 0)
    pages = store.stat().st_size // int.from_bytes(store.read_bytes()[16:18], "big")
    if damage == "zeroed pages":
        zero_pages(store, pages // 2, 20)  # in the middle of the conversations table
    elif damage == "zeroed file":
        zero_pages(store, 0, pages)
    elif damage == "truncated":
        store.write_bytes(store.read_bytes()[:5000])
    else:
        store.write_text("these are not the rows you are looking for\n" * 100)
    result = serve(store)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert error[0].startswith(f"Error: the store {store} is damaged (")
    assert "restore the last backup" in error[0]


async def test_a_shutdown_while_the_disk_is_full_ends_and_the_restart_answers_everything(
        tmp_path, autojump_clock):
    """SIGTERM with a full disk: the server stops after the grace instead of hanging, and the
    next start replays the acknowledged messages whose steps were not committed."""
    texts = {f"s{i}": (BUYERS[i % len(BUYERS)], f"{i} {PADDING}") for i in range(30)}
    acked: set[str] = set()
    config = make_config(runtime={"shutdown_grace": "5s"})
    async with running(tmp_path, config) as (server, phones):
        first = dict(list(texts.items())[:10])
        assert await inject_all(server, first, acked) == []  # acknowledged, not yet answered
        FullAtCommit(server.store)
        refused = await inject_all(server, texts, acked)
        assert len(refused) == len(texts) - len(first)
        await trio.sleep(10)
        assert server.store.failing == "disk full"
        answered_before = Counter((m.their_number, m.text) for m in phones.all)
        stopping = trio.current_time()
        server.stop()
    assert trio.current_time() - stopping <= 5 + 10 + 3  # shutdown_grace + the store's grace
    async with running(tmp_path, config) as (server, phones):  # space is back (a new process)
        while await inject_all(server, texts, acked):
            await trio.sleep(1)
        await settle(server)
        await trio.sleep(5)
        answered = answered_before + Counter((m.their_number, m.text) for m in phones.all)
        want = Counter((buyer, f"re: {text}") for buyer, text in texts.values())
        assert answered == want
        assert server.store.query(
            "SELECT count(*) FROM conversations WHERE status = 'parked'") == [(0,)]


def test_chat_says_a_line_was_not_sent_while_the_store_cannot_commit(tmp_path, monkeypatch):
    real = SimGateway.inject
    refusals = [1]

    async def inject(self, **message):
        if refusals[0]:
            refusals[0] -= 1
            raise StoreUnavailable("disk full")
        return await real(self, **message)

    monkeypatch.setattr(SimGateway, "inject", inject)
    result = CliRunner().invoke(main, ["chat", "--config", CONFIG, "--city", "seattle",
                                       "--fast", "--db", str(tmp_path / "chat.db")],
                                input="hey is this available\nhey is this available\n")
    assert result.exit_code == 0, result.output
    assert "(not sent: the store cannot commit now (disk full); try again later)" in (
        result.output)
    assert "Traceback" not in result.output
    assert any(line.startswith("Jasmine: ") for line in result.output.splitlines())
