"""The HTTP layer runs on `HttpServices` (http/services.py), not on the `Server`: what only the
composition root can do goes through its `ServerActions`, which a test can stand in for."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

from intercept.http.app import App
from intercept.http.services import HttpServices
from intercept.store import OutboxRow

from helpers import ADMIN_TOKEN, ADMIN_TOKENS, make_config, running


class InlineReads:
    """The API's reads on the trio thread: a worker thread would let the mock clock jump."""

    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, isolation_level=None)

    async def run(self, fn: Any, *args: Any) -> Any:
        return fn(self.conn, *args)


class Actions:
    """A stand-in for the server's actions that records what the API asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def take_over(self, conversation_id: int, text: str, *, author: str,
                        override: bool = False) -> OutboxRow:
        self.calls.append(("take_over", conversation_id, text, author))
        if conversation_id == 404:
            raise LookupError("no conversation 404")
        if conversation_id == 409:
            raise PermissionError("the number opted out: nothing more may be sent to it")
        return OutboxRow(id=f"{conversation_id}.3.0", conversation_id=conversation_id,
                         position=300, our_number="", their_number="", body=text,
                         not_before=0.0, kind="operator")

    async def hand_back(self, conversation_id: int, *, author: str) -> None:
        self.calls.append(("hand_back", conversation_id, author))

    async def reload(self) -> Any:
        raise AssertionError("not used here")

    async def purge(self, kind: Any, older_than: float, *, dry_run: bool = False) -> Any:
        raise AssertionError("not used here")

    def health(self) -> dict[str, Any]:
        self.calls.append(("health",))
        return {"status": "ok", "gateway": "stand-in", "store": "ok", "live_actors": 7,
                "outbox_depth": 0}


async def call(app: App, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "headers": [(b"authorization", f"Bearer {ADMIN_TOKEN}".encode())],
             "client": ("10.0.0.1", 40000)}
    return await app.handle(scope, json.dumps(body).encode() if body is not None else b"")


async def test_the_app_asks_the_actions_it_is_handed(tmp_path, autojump_clock):
    async with running(tmp_path, make_config(api={"tokens": ADMIN_TOKENS})) as (server, _):
        actions = Actions()
        services = dataclasses.replace(server.http_services, actions=actions)
        assert isinstance(services, HttpServices)
        app = App(services)
        app.reads.close()
        reads = InlineReads(server.store.path)
        app.access.reads = app.api.reads = reads  # type: ignore[assignment]

        health = await call(app, "GET", "/healthz")
        assert health.status == 200 and json.loads(health.body)["gateway"] == "stand-in"
        sent = await call(app, "POST", "/api/conversations/5/messages", {"text": "hello"})
        assert sent.status == 200, sent.body
        assert json.loads(sent.body) == {"id": "5.3.0", "conversation_id": 5, "status": "queued"}
        assert (await call(app, "POST", "/api/conversations/404/messages",
                           {"text": "x"})).status == 404
        refused = await call(app, "POST", "/api/conversations/409/messages", {"text": "x"})
        assert refused.status == 409 and b"opted out" in refused.body
        assert actions.calls == [("health",), ("take_over", 5, "hello", "root"),
                                 ("take_over", 404, "x", "root"),
                                 ("take_over", 409, "x", "root")]
        audited = server.store.query("SELECT action, status FROM audit ORDER BY id")
        assert audited == [("POST /api/conversations/{id}/messages", 200),
                           ("POST /api/conversations/{id}/messages", 404),
                           ("POST /api/conversations/{id}/messages", 409)]
        reads.conn.close()
