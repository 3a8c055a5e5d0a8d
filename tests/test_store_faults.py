"""A store that cannot commit (disk full, I/O error) is waited out, never a crash or a loss.

The disk fills in two ways: SQLite's own limit (`PRAGMA max_page_count` set to the current size,
so any write that grows the file fails with SQLITE_FULL, as on a full disk) and a real tmpfs
that runs out of space.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import pytest
import trio

from intercept.gateways import SimGateway
from intercept.metrics import Metrics
from intercept.server import Server
from intercept.store import Op, Store, StoreUnavailable

from helpers import OUR, make_config, registry, running

BUYERS = [f"+1206555{2000 + i:04d}" for i in range(6)]
PADDING = "x" * 1500  # each message needs new pages, so a full store refuses it


def fill(store: Store) -> None:
    """The disk is full: the file may not grow by one page."""
    (pages,) = store.db.conn.execute("PRAGMA page_count").fetchone()
    store.db.conn.execute(f"PRAGMA max_page_count = {pages}")


def free(store: Store) -> None:
    """Space comes back."""
    store.db.conn.execute("PRAGMA max_page_count = 1000000000")


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


class Blob(Op):
    """A write of `size` bytes (an audit row)."""

    __slots__ = ("size",)

    def __init__(self, size: int):
        self.size = size

    def apply(self, cur, cache):
        cur.execute("INSERT INTO audit (at, actor, role, action, status, detail) "
                    "VALUES (0, 'test', '', 'blob', 200, ?)", ("x" * self.size,))


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
        assert health["status"] == "failing" and health["store"] == "failing: disk full"
        assert sample(server.metrics, "intercept_store_failing") == 1
        await trio.sleep(120)  # actors wait for their commits; nothing is parked
        assert sample(server.metrics, "intercept_actor_crashes_total") == 0
        free(server.store)
        await trio.sleep(5)
        assert server.store.failing is None and server.health()["store"] == "ok"
        while await inject_all(server, texts, acked):  # the network delivers them again
            await trio.sleep(1)
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
            assert health.json()["store"] == "failing: disk full"
            free(server.store)
            # the provider retries after Retry-After: that commit succeeds, health follows
            r = await client.post("/sim/messages", json={
                "from": BUYERS[0], "to": OUR, "text": "again", "id": f"h{len(statuses) - 1}"})
            assert r.status_code == 200
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
    assert fault_kind(OSError(os.strerror(28))) == "I/O error"
