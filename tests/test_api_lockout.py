"""Failed authentications: counted, logged (rate-limited, no token), audited, and locked out."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import trio

from intercept.http.app import App
from intercept.http.lockout import FailureLimiter
from intercept.server import Server

from helpers import ADMIN_TOKEN, ADMIN_TOKENS, make_config, running

WRONG = "wrong-token-guess-000001"


class InlineReads:
    """The API's reads on the trio thread: a worker thread would let the mock clock jump."""

    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, isolation_level=None)

    async def run(self, fn: Any, *args: Any) -> Any:
        return fn(self.conn, *args)


def make_app(server: Server) -> App:
    app = App(server.http_services)
    app.reads.close()
    app.access.reads = app.api.reads = InlineReads(server.store.path)  # type: ignore[assignment]
    return app


async def call(app: App, path: str = "/api/me", token: str | None = WRONG,
               client: str = "10.9.8.7", method: str = "GET") -> Any:
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "headers": headers, "client": (client, 40000)}
    return await app.handle(scope, b"")


def failures(server: Server, reason: str) -> float:
    value = server.metrics.registry.get_sample_value("intercept_api_auth_failures_total",
                                                     {"reason": reason})
    return value or 0.0


def config(**api: Any) -> Any:
    return make_config(api={"tokens": ADMIN_TOKENS, "max_failures": 3, "failure_window": "1m",
                            "lockout": "5m", **api})


async def test_failures_are_counted_logged_audited_and_locked_out(tmp_path: Path,
                                                                  autojump_clock, caplog):
    caplog.set_level(logging.WARNING, logger="intercept.http.access")
    async with running(tmp_path, config()) as (server, _):
        app = make_app(server)
        for _ in range(2):
            assert (await call(app)).status == 401
        assert failures(server, "invalid") == 2
        lines = [r.getMessage() for r in caplog.records]
        assert lines == ["API authentication failed: invalid token from 10.9.8.7 on GET "
                         "/api/me"]  # the second one waits for the next line
        third = await call(app, token=None, client="10.9.8.7")  # no token: not held against it
        assert third.status == 401 and failures(server, "missing") == 1
        response = await call(app, token="x")  # the third wrong one locks the address out
        assert response.status == 401
        locked = await call(app, token=ADMIN_TOKEN)  # even the right token: no oracle
        assert locked.status == 429
        assert dict(locked.headers)[b"retry-after"] == b"300"
        assert b"too many failed authentications" in locked.body
        assert (await call(app, token=ADMIN_TOKEN, client="10.9.8.8")).status == 200
        assert failures(server, "locked") == 1
        rows = server.store.query("SELECT actor, role, action, status, detail FROM audit "
                                  "ORDER BY id")
        assert rows == [("anonymous", "", "GET /api/me", 401,
                         "authentication failed: invalid token from 10.9.8.7")] * 2 + [
            ("anonymous", "", "GET /api/me", 401,
             "authentication failed: invalid token from 10.9.8.7; locked out for 300 s")]
        assert not any(WRONG in str(row) for row in rows)
        await trio.sleep(61)
        assert (await call(app)).status == 429  # still locked: another log line waits
        await trio.sleep(240)
        assert (await call(app, token=ADMIN_TOKEN)).status == 200  # the lockout is over
        assert (await call(app)).status == 401
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2 and lines[1].endswith("(2 more failures since the last line)")
        assert not any(WRONG in line for line in lines)
        app.access.reads.conn.close()  # type: ignore[attr-defined]


async def test_the_lockout_can_be_turned_off(tmp_path: Path, autojump_clock):
    async with running(tmp_path, config(max_failures=0)) as (server, _):
        app = make_app(server)
        for _ in range(20):
            assert (await call(app)).status == 401
        assert failures(server, "invalid") == 20 and failures(server, "locked") == 0
        app.access.reads.conn.close()  # type: ignore[attr-defined]


def test_the_table_of_clients_is_bounded():
    limiter = FailureLimiter(max_failures=2, window=60, lockout=300, max_clients=3)
    assert not limiter.fail("a", 0)
    assert limiter.fail("a", 1)  # the second failure in a minute locks "a" out
    assert limiter.retry_after("a", 1) == 300
    for i, client in enumerate(("b", "c", "d")):
        limiter.fail(client, 2 + i)
    assert len(limiter) == 3  # "a", heard of longest ago, was forgotten
    assert limiter.retry_after("a", 10) == 0
    assert not limiter.fail("b", 100)  # a new window: its old failure no longer counts
    assert limiter.fail("b", 101)


async def test_lists_and_searches_of_numbers_are_audited(tmp_path: Path, autojump_clock):
    async with running(tmp_path, config()) as (server, _):
        app = make_app(server)
        for path in ("/api/conversations", "/api/queue"):
            assert (await call(app, path, token=ADMIN_TOKEN)).status == 200
        rows = server.store.query("SELECT actor, action, status, detail FROM audit ORDER BY id")
        assert rows == [("root", "GET /api/conversations", 200, "0 of 0 from 0 with full numbers"),
                        ("root", "GET /api/queue", 200, "0 of 0 from 0 with full numbers")]
        app.access.reads.conn.close()  # type: ignore[attr-defined]
