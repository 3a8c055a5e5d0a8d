"""The sender against a gateway that throttles, fails, loses answers and has a window."""

from __future__ import annotations

import trio

from intercept.errors import GatewayError, GatewayOutcomeUnknown, GatewayRetryLater
from intercept.gateways import OutboundMessage, SimGateway

from helpers import OUR, make_config, running


class Flaky(SimGateway):
    """Answers submits according to `rules`: text -> list of outcomes, one per attempt."""

    def __init__(self, rules: dict[str, list[str]], *, window: int = 1, delay: float = 0.0):
        super().__init__(receipts=False)
        self.rules = rules
        self.max_in_flight = window
        self.delay = delay
        self.attempts: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def submit(self, message: OutboundMessage) -> str:
        self.attempts.append(message.text)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                await trio.sleep(self.delay)
            plan = self.rules.get(message.text.split(": ", 1)[-1], [])
            outcome = plan.pop(0) if plan else "ok"
            if outcome == "throttle":
                raise GatewayRetryLater("ESME_RTHROTTLED", retry_after=5.0)
            if outcome == "unknown":
                raise GatewayOutcomeUnknown("no submit_sm_resp within 30s")
            if outcome == "refuse":
                raise GatewayError("ESME_RINVDSTADR: invalid destination")
            return await super().submit(message)
        finally:
            self.in_flight -= 1


async def talk(server, their: str, lines: list[str]) -> None:
    for line in lines:
        done = await server.gateway.inject(their_number=their, our_number=OUR, text=line)
    await server.settled(done.conversation_id, done.conv_seq)


async def test_throttled_rows_are_retried_in_order(tmp_path, autojump_clock):
    gateway = Flaky({"a": ["throttle", "throttle"]})
    async with running(tmp_path, gateway=gateway) as (server, phones):
        await talk(server, "+12065550199", ["a", "b"])
        assert phones.by_number["+12065550199"] == ["re: a", "re: b"]
        assert gateway.attempts.count("re: a") == 3
        statuses = server.store.query("SELECT body, status FROM outbox ORDER BY position")
        assert statuses == [("re: a", "sent"), ("re: b", "sent")]


async def test_a_later_reply_never_overtakes_one_waiting_to_be_sent_again(tmp_path,
                                                                         autojump_clock):
    """'re: a' is throttled for 5 s; 'b' arrives a second later: its reply waits for 're: a'."""
    gateway = Flaky({"a": ["throttle"]})
    their = "+12065550199"
    async with running(tmp_path, gateway=gateway) as (server, phones):
        await server.gateway.inject(their_number=their, our_number=OUR, text="a")
        await trio.sleep(1)
        assert phones.by_number[their] == []
        await talk(server, their, ["b"])
        assert phones.by_number[their] == ["re: a", "re: b"]
        assert gateway.attempts == ["re: a", "re: a", "re: b"]


async def test_unknown_outcomes_are_never_resent_and_refusals_fail(tmp_path, autojump_clock):
    gateway = Flaky({"a": ["unknown"], "b": ["refuse"]})
    async with running(tmp_path, gateway=gateway) as (server, phones):
        await talk(server, "+12065550199", ["a", "b", "c"])
        await trio.sleep(60)
        assert gateway.attempts == ["re: a", "re: b", "re: c"]
        assert phones.by_number["+12065550199"] == ["re: c"]
        rows = server.store.query("SELECT body, status, error FROM outbox ORDER BY position")
        assert rows == [("re: a", "unknown", "no submit_sm_resp within 30s"),
                        ("re: b", "failed", "ESME_RINVDSTADR: invalid destination"),
                        ("re: c", "sent", None)]
        assert server.metrics.registry.get_sample_value(
            "intercept_messages_out_failed_total") == 1


async def test_a_window_overlaps_conversations_but_keeps_each_in_order(tmp_path,
                                                                        autojump_clock):
    gateway = Flaky({}, window=10, delay=0.5)
    config = make_config(delays={"enabled": False})
    async with running(tmp_path, config, gateway=gateway) as (server, phones):
        buyers = [f"+1206555{5000 + i:04d}" for i in range(8)]
        async with trio.open_nursery() as nursery:
            for their in buyers:
                nursery.start_soon(talk, server, their, ["1", "2", "3"])
        for their in buyers:
            assert phones.by_number[their] == ["re: 1", "re: 2", "re: 3"]
        assert gateway.peak > 1  # different conversations were in flight together


async def test_a_receipt_that_beats_the_sent_record_is_kept(tmp_path, autojump_clock):
    """Fast networks answer before we record the submit: the receipt waits for its row."""
    from intercept.store import MarkOutbox, Receipt

    async with running(tmp_path) as (server, _):
        done = await server.gateway.inject(their_number="+12065550199", our_number=OUR,
                                           text="x")
        await server.settled(done.conversation_id, done.conv_seq)
        store = server.store
        store.db.execute("INSERT INTO outbox (id, conversation_id, position, our_number, "
                         "their_number, body, not_before, status) VALUES ('late', ?, 999, ?, "
                         "'+12065550199', 'x', 0, 'sending')", (done.conversation_id, OUR))
        await store.call(Receipt([("gw-early", "delivered", None)], now=1.0))
        await store.call(Receipt([("gw-nobody", "delivered", None)], now=1.0))
        await store.call(MarkOutbox(["late"], "sent", now=3.0, gateway_ids=["gw-early"]))
        assert store.query("SELECT status, gateway_id FROM outbox WHERE id = 'late'") == [
            ("delivered", "gw-early")]
        assert store.query("SELECT gateway_id FROM early_receipts") == [("gw-nobody",)]
