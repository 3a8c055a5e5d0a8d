"""Hand-off alerts: coalesced, urgent at once, by SMS through the sender and by a signed
webhook with retries; the queue's metrics; and never a message or the person's number."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client import CollectorRegistry

from intercept.config import config_from_dict
from intercept.errors import ConfigError
from intercept.runtime.handoff_alerts import SIGNATURE_HEADER, AlertSettings, HandoffAlerts
from intercept.store import CommitStep, HandoffMade, OperatorSend, OutboxRow, connect
from intercept.store.ops import Op, WriterCache

THEIR = "+12065550123"
SAID = "he hit me, im scared"
ONCALL, FROM = "+12065550188", "+12065550130"


class FakeStore:
    """`call(op)` applies the op at once on a migrated file (the writer's work, inline)."""

    def __init__(self, path: Path):
        self.db = connect(path)
        self.cache = WriterCache()

    async def call(self, op: Op) -> Any:
        await trio.lowlevel.checkpoint()
        return op.apply(self.db.conn.cursor(), self.cache)

    def hand_off(self, their: str, priority: str, now: float) -> int:
        cid = int(self.db.conn.execute(
            "INSERT INTO conversations (our_number, their_number, status, created_at, "
            "updated_at) VALUES (?, ?, 'active', ?, ?)", (FROM, their, now, now)).lastrowid or 0)
        self.db.conn.execute("INSERT INTO inbound (conversation_id, conv_seq, gateway, "
                             "gateway_id, our_number, their_number, body, received_at) "
                             "VALUES (?, 1, 'sim', ?, ?, ?, ?, ?)",
                             (cid, f"g{cid}", FROM, their, SAID, now))
        CommitStep(conversation_id=cid, scenario="s", version=1, status="handed_off",
                   outcome=None, state="{}", processed_count=1, timer_at=None, crashes=0,
                   outbox=[], now=now, handoff=HandoffMade(priority, "may be in danger")
                   ).apply(self.db.conn.cursor(), self.cache)
        return cid


class Hook:
    """A webhook receiver: answers with `statuses` in turn (then 200), records requests."""

    def __init__(self, *statuses: int):
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def alerts(tmp_path: Path, hook: Hook | None = None, **settings: Any
           ) -> tuple[HandoffAlerts, FakeStore, Clock, list[OutboxRow], CollectorRegistry]:
    store, clock, texts, registry = FakeStore(tmp_path / "a.db"), Clock(), [], CollectorRegistry()
    defaults: dict[str, Any] = {"oncall_number": ONCALL, "oncall_from": FROM,
                                "coalesce": 300.0}
    if hook is not None:
        defaults |= {"webhook_url": "https://hooks.example.org/x", "webhook_secret": "k3y"}
    watcher = HandoffAlerts(store=store, settings=AlertSettings(**(defaults | settings)),
                            clock=clock, registry=registry, send_sms=texts.extend,
                            transport=None if hook is None else httpx.MockTransport(hook),
                            rng=random.Random(1))
    return watcher, store, clock, texts, registry


async def test_new_hand_offs_are_coalesced_and_urgent_ones_alert_at_once(tmp_path):
    watcher, store, clock, texts, _ = alerts(tmp_path)
    assert await watcher.check() is None  # nothing open
    store.hand_off("+12065550101", "normal", clock.now)
    first = await watcher.check()
    assert first is not None and (first.new, first.new_urgent, first.open) == (1, 0, 1)
    assert [t.their_number for t in texts] == [ONCALL] and texts[0].kind == "alert"
    assert texts[0].body == ("Intercept: 1 new hand-off. 1 open, oldest waiting 0s. See the "
                             "advocates' inbox.")
    clock.now += 60
    store.hand_off("+12065550102", "normal", clock.now)
    store.hand_off("+12065550103", "normal", clock.now)
    assert await watcher.check() is None  # within the window: they wait
    clock.now += 60
    store.hand_off(THEIR, "urgent", clock.now)
    urgent = await watcher.check()  # urgent: at once, with the waiting ones
    assert urgent is not None and (urgent.new, urgent.new_urgent, urgent.open_urgent) == (3, 1, 1)
    assert urgent.oldest_wait_seconds == 120
    assert texts[-1].body == ("Intercept: 3 new hand-offs, 1 URGENT. 4 open, oldest waiting "
                              "2m. See the advocates' inbox.")
    clock.now += 600
    assert await watcher.check() is None  # nothing new
    assert len(texts) == 2


async def test_a_signed_webhook_is_tried_again_with_backoff(tmp_path, autojump_clock):
    hook = Hook(503, 500)
    watcher, store, clock, texts, registry = alerts(tmp_path, hook, oncall_number="")
    store.hand_off(THEIR, "urgent", clock.now)
    started = trio.current_time()
    alert = await watcher.check()
    assert alert is not None and texts == []
    assert len(hook.requests) == 3 and trio.current_time() - started >= 1.0
    body = hook.requests[-1].content
    expected = "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert hook.requests[-1].headers[SIGNATURE_HEADER] == expected
    payload = json.loads(body)
    assert payload["event"] == "handoffs" and payload["new_urgent"] == 1
    assert set(payload) == {"event", "new", "new_urgent", "open", "open_urgent",
                            "oldest_wait_seconds", "handoff_ids", "at"}
    sample = registry.get_sample_value
    assert sample("intercept_handoff_alerts_total", {"channel": "webhook", "result": "sent"}) == 1


async def test_a_webhook_that_keeps_failing_is_counted_failed(tmp_path, autojump_clock):
    hook = Hook(503, 503, 503, 503)
    watcher, store, clock, _, registry = alerts(tmp_path, hook, oncall_number="",
                                                webhook_attempts=3)
    store.hand_off(THEIR, "normal", clock.now)
    await watcher.check()
    assert len(hook.requests) == 3
    assert registry.get_sample_value("intercept_handoff_alerts_total",
                                     {"channel": "webhook", "result": "failed"}) == 1
    refused = Hook(400)
    watcher, store, clock, _, _ = alerts(tmp_path / "b", refused, oncall_number="")
    store.hand_off(THEIR, "normal", clock.now)
    await watcher.check()
    assert len(refused.requests) == 1  # a 400 is not tried again


async def test_no_alert_carries_a_message_or_the_persons_number(tmp_path, autojump_clock):
    hook = Hook()
    watcher, store, clock, texts, _ = alerts(tmp_path, hook)
    store.hand_off(THEIR, "urgent", clock.now)
    store.hand_off("+12065550177", "normal", clock.now)
    await watcher.check()
    sent = [t.body for t in texts] + [r.content.decode() for r in hook.requests]
    assert len(sent) == 2
    for text in sent:
        for secret in (THEIR, THEIR[1:], THEIR[-7:], "5550177", SAID, "scared", "hit me",
                       "danger"):
            assert secret not in text, (secret, text)


async def test_the_queue_metrics(tmp_path):
    watcher, store, clock, _, registry = alerts(tmp_path, oncall_number="")
    sample = registry.get_sample_value
    await watcher.check()
    assert sample("intercept_handoffs_open", {"priority": "urgent"}) == 0
    a = store.hand_off("+12065550101", "normal", clock.now)
    clock.now += 100
    store.hand_off("+12065550102", "urgent", clock.now)
    clock.now += 50
    await watcher.check()
    assert sample("intercept_handoffs_open", {"priority": "normal"}) == 1
    assert sample("intercept_handoffs_open", {"priority": "urgent"}) == 1
    assert sample("intercept_handoff_oldest_wait_seconds") == 150
    OperatorSend(a, "Hi, I'm Sam", author="sam", now=clock.now).apply(
        store.db.conn.cursor(), store.cache)
    await watcher.check()
    assert sample("intercept_handoff_oldest_wait_seconds") == 50  # a is answered
    assert sample("intercept_handoff_first_reply_seconds_count") == 1
    assert sample("intercept_handoff_first_reply_seconds_sum") == 150
    await watcher.check()
    assert sample("intercept_handoff_first_reply_seconds_count") == 1  # counted once


def test_the_config_section_is_checked():
    numbers = [{"number": FROM, "city": "sea", "scenario": "echo", "kind": "outreach",
                "persona": {"name": "Maya"}}]
    cities = {"sea": {"name": "Seattle", "link": "https://example.org"}}
    config = config_from_dict({"cities": cities, "numbers": numbers,
                               "handoffs": {"oncall_number": ONCALL}})
    settings = AlertSettings.from_config(config)
    assert (settings.oncall_number, settings.oncall_from, settings.interval) == (ONCALL, FROM,
                                                                                 30.0)
    for section, message in [
        ({"oncall_number": "12"}, "oncall_number '12' is not a valid phone number"),
        ({"oncall_number": FROM}, "handoffs.oncall_number: '+12065550130' is one of our own"),
        ({"oncall_from": "+12065550999"}, "handoffs.oncall_from: '+12065550999' is not one"),
        ({"webhook_url": "https://x.example.org"}, "webhook_url needs webhook_secret"),
        ({"coalesce": "soon"}, "handoffs.coalesce:"),
        ({"interval": "0s"}, "interval is '0s'; use at least 1s"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            config_from_dict({"cities": cities, "numbers": numbers, "handoffs": section})


async def test_an_urgent_hand_off_texts_the_on_call_advocate_through_the_gateway(
        tmp_path, autojump_clock):
    from helpers import BUYER, OUR, make_config, running, say, scripted_registry

    config = make_config("scripted", handoffs={"interval": "10s", "oncall_number": ONCALL})
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        await say(server, "urgent")
        await trio.sleep(11)
        assert phones.by_number[BUYER] == ["call 911 if you are in danger"]
        (alert,) = phones.by_number[ONCALL]
        assert alert.startswith("Intercept: 1 new hand-off, 1 URGENT. 1 open")
        assert [m.our_number for m in phones.all if m.their_number == ONCALL] == [OUR]
        metrics = server.metrics.registry.get_sample_value
        assert metrics("intercept_handoffs_open", {"priority": "urgent"}) == 1
        assert metrics("intercept_handoff_alerts_total", {"channel": "sms",
                                                          "result": "queued"}) == 1
        await trio.sleep(60)
        assert len(phones.by_number[ONCALL]) == 1  # alerted once
