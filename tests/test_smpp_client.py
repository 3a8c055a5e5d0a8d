"""The SMPP client against the simulated SMSC: bind, submit, receipts, keep-alive, faults.

Links are in-memory streams (so `MockClock(autojump_threshold=0)` can run minutes of timeouts in
milliseconds); one test goes over TCP on 127.0.0.1.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
from prometheus_client import CollectorRegistry

from intercept.errors import GatewayError, GatewayOutcomeUnknown, GatewayRetryLater
from intercept.gateways import DeliveryReceipt, InboundMessage, OutboundMessage
from intercept.gateways.smpp import CommandStatus, DeliverSm, split
from intercept.gateways.smpp.client import SmppGateway
from loadtest.smsc import Mt, Smsc

OUR = "+12065550100"
THEIR = "+12065550199"
LONG_EMOJI = "Meet me at the café 😀👍🏽 — " * 12
LONG_GSM = "A long GSM text with {braces} and € signs, " * 9


class FakeSink:
    """Records what the gateway commits; unique by gateway id, like the store."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.ids: set[str] = set()
        self.duplicates = 0
        self.receipts_seen: list[DeliveryReceipt] = []
        self.changed = trio.Event()

    async def inbound(self, message: InboundMessage) -> Any:
        return (await self.inbound_many([message]))[0]

    async def inbound_many(self, messages: list[InboundMessage]) -> list[Any]:
        await trio.sleep(0)  # a commit takes a moment
        for message in messages:
            if message.gateway_id in self.ids:
                self.duplicates += 1
            else:
                self.ids.add(message.gateway_id)
                self.messages.append(message)
        self.changed.set()
        return [None] * len(messages)

    async def receipts(self, receipts: list[DeliveryReceipt]) -> None:
        self.receipts_seen += receipts
        self.changed.set()

    async def wait(self, predicate) -> None:
        while not predicate():
            self.changed = trio.Event()
            await self.changed.wait()


@asynccontextmanager
async def linked(smsc: Smsc | None = None, sink: FakeSink | None = None, **options: Any
                 ) -> AsyncIterator[tuple[Smsc, SmppGateway, FakeSink]]:
    smsc = smsc or Smsc()
    sink = sink or FakeSink()
    options.setdefault("system_id", "intercept")
    options.setdefault("password", "secret")
    options.setdefault("wall_clock", lambda: 1.7e9 + trio.current_time())  # follows MockClock
    gateway = SmppGateway(connect=smsc.connect, **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(smsc.run)
        await nursery.start(gateway.run, sink)
        yield smsc, gateway, sink
        nursery.cancel_scope.cancel()


def out(i: int | str, text: str = "hello", their: str = THEIR) -> OutboundMessage:
    return OutboundMessage(outbox_id=str(i), our_number=OUR, their_number=their, text=text)


async def submit_until_sent(gateway: SmppGateway, message: OutboundMessage) -> str:
    """What the sender does: retry later until the gateway takes it."""
    while True:
        try:
            return await gateway.submit(message)
        except GatewayRetryLater as exc:
            await trio.sleep(exc.retry_after)


async def test_bind_submit_and_receipt(autojump_clock):
    async with linked() as (smsc, gateway, sink):
        assert smsc.binds == 1 and gateway.is_bound
        gateway_id = await gateway.submit(out(1, "hi there"))
        assert smsc.phones[THEIR] == ["hi there"]
        assert smsc.messages[0].message_ids == (gateway_id,)
        assert smsc.submits[0].source_addr == "12065550100"
        assert smsc.submits[0].registered_delivery == 1
        await sink.wait(lambda: sink.receipts_seen)
        assert sink.receipts_seen == [DeliveryReceipt(gateway_id, "delivered")]


async def test_failed_receipts_carry_the_reason_and_enroute_is_ignored(autojump_clock):
    stats = iter(["UNDELIV", "ENROUTE", "DELIVRD"])
    smsc = Smsc(receipt_stat=lambda mt: next(stats))
    async with linked(smsc) as (smsc, gateway, sink):
        ids = [await gateway.submit(out(i)) for i in range(3)]
        await sink.wait(lambda: len(sink.receipts_seen) == 2)
        await trio.sleep(1)
        assert sink.receipts_seen == [DeliveryReceipt(ids[0], "failed", "UNDELIV err:001"),
                                      DeliveryReceipt(ids[2], "delivered")]


async def test_over_tcp_on_loopback():
    smsc = Smsc()
    sink = FakeSink()
    async with trio.open_nursery() as nursery:
        await nursery.start(smsc.run)
        port = await nursery.start(smsc.serve_tcp)
        gateway = SmppGateway(host="127.0.0.1", port=port, system_id="intercept",
                              password="secret")
        await nursery.start(gateway.run, sink)
        ids = await _submit_many(gateway, 200)
        assert len(set(ids)) == 200
        await smsc.deliver(THEIR, OUR, "over tcp")
        await sink.wait(lambda: sink.messages)
        assert sink.messages[0].text == "over tcp"
        nursery.cancel_scope.cancel()


async def _submit_many(gateway: SmppGateway, count: int, text: str = "m{}") -> list[str]:
    ids: list[str] = [""] * count

    async def one(i: int) -> None:
        ids[i] = await submit_until_sent(gateway, out(i, text.format(i), f"+1206555{i:04d}"))

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
    return ids


async def test_a_refused_first_bind_is_an_error_naming_the_credentials(autojump_clock):
    smsc = Smsc(password="right")
    gateway = SmppGateway(connect=smsc.connect, system_id="intercept", password="wrong")
    with pytest.raises(BaseExceptionGroup) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(smsc.run)
            await nursery.start(gateway.run, FakeSink())
    [error] = caught.value.exceptions
    assert isinstance(error, GatewayError)
    assert "refused: the SMSC refused the bind with ESME_RINVPASWD" in str(error)
    assert "password" in str(error)


async def test_submit_when_not_bound_is_retried_later(autojump_clock):
    gateway = SmppGateway(system_id="x", password="y")
    with pytest.raises(GatewayRetryLater) as caught:
        await gateway.submit(out(1))
    assert caught.value.retry_after >= 1


async def test_the_server_starts_while_the_smsc_is_unreachable_and_binds_later(autojump_clock):
    smsc = Smsc()
    attempts = 0

    async def flaky() -> trio.abc.Stream:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise OSError(111, "Connection refused")
        return await smsc.connect()

    gateway = SmppGateway(connect=flaky, system_id="intercept", password="secret",
                          reconnect_min=1, reconnect_max=8)
    async with trio.open_nursery() as nursery:
        await nursery.start(smsc.run)
        start = trio.current_time()
        await nursery.start(gateway.run, FakeSink())  # returns after the first failure
        assert not gateway.is_bound
        await gateway.bound.wait()
        assert attempts == 4
        assert 0.5 + 1 + 2 <= trio.current_time() - start <= 1 + 2 + 4  # backoff with jitter
        assert await gateway.submit(out(1))
        nursery.cancel_scope.cancel()


async def test_enquire_link_both_ways(autojump_clock):
    async with linked(enquire_link_interval=10) as (smsc, _gateway, _sink):
        assert await smsc.enquire_link()  # the gateway answers the SMSC's
        assert smsc.enquire_links == 0
        await trio.sleep(35)  # idle: the gateway sends its own
        assert smsc.enquire_links >= 3
        assert smsc.binds == 1


async def test_an_unanswered_enquire_link_drops_the_link_and_rebinds(autojump_clock):
    async with linked(enquire_link_interval=10, submit_timeout=5) as (smsc, gateway, _sink):
        smsc.answer_enquire_link = False
        await trio.sleep(10 + 5 + 2)
        assert gateway.metrics.reconnects._value.get() >= 1
        smsc.answer_enquire_link = True
        await gateway.bound.wait()
        assert smsc.binds >= 2
        assert await gateway.submit(out(1))


async def test_drop_before_the_response_retries_after_reconnect(autojump_clock):
    async with linked() as (smsc, gateway, _sink):
        smsc.drop_on_submit("before_resp", after=30)
        ids = await _submit_many(gateway, 100)
        await trio.sleep(1)  # the last answers are written
        assert smsc.binds == 2
        texts = Counter(mt.text for mt in smsc.messages)
        assert set(texts) == {f"m{i}" for i in range(100)}  # nothing lost
        # Only the one the SMSC accepted without answering went twice (at-least-once edge);
        # whatever got a submit_sm_resp was never resent.
        twice = [t for t, n in texts.items() if n > 1]
        assert len(twice) == 1 and texts[twice[0]] == 2
        assert all(i in smsc.answered for i in ids)
        answered_texts = Counter(mt.text for mt in smsc.messages
                                 if mt.message_ids[0] in smsc.answered)
        assert max(answered_texts.values()) == 1


@pytest.mark.parametrize("mode", ["before_accept", "after_resp"])
async def test_drop_without_an_accept_in_doubt_sends_everything_once(autojump_clock, mode):
    async with linked() as (smsc, gateway, _sink):
        smsc.drop_on_submit(mode, after=40)
        await _submit_many(gateway, 100)
        assert smsc.binds == 2
        assert sorted(mt.text for mt in smsc.messages) == sorted(f"m{i}" for i in range(100))


async def test_mo_in_flight_when_the_link_drops_is_redelivered_and_not_doubled(autojump_clock):
    async with linked() as (smsc, _gateway, sink):
        deliveries = [smsc.deliver_nowait(f"+1206555{i:04d}", OUR, f"mo {i}")
                      for i in range(300)]
        await trio.sleep(0)
        smsc.drop_connections()
        for delivery in deliveries:
            await delivery.acked.wait()
        assert smsc.binds == 2
        assert sorted(m.text for m in sink.messages) == sorted(f"mo {i}" for i in range(300))


async def test_a_sporadic_throttle_retries_soon_and_leaves_the_rate_alone(autojump_clock):
    async with linked() as (smsc, gateway, _sink):
        smsc.throttle(3)
        with pytest.raises(GatewayRetryLater) as caught:
            await gateway.submit(out(1))
        assert "throttled" in str(caught.value)
        assert 0.2 <= caught.value.retry_after <= 0.8  # a short, jittered wait
        await submit_until_sent(gateway, out(1))
        assert smsc.phones[THEIR] == ["hello"]
        assert gateway.metrics.throttled._value.get() == 3
        assert not gateway._rate.limited  # three refusals are not a rate limit


async def test_an_smsc_rate_limit_is_learned(autojump_clock):
    smsc = Smsc(max_rate=50)
    async with linked(smsc) as (smsc, gateway, _sink):
        start = trio.current_time()
        throttled_at: list[float] = []

        async def watch() -> None:
            while True:
                await trio.sleep(2)
                throttled_at.append(gateway.metrics.throttled._value.get())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await _submit_many(gateway, 600)
            nursery.cancel_scope.cancel()
        elapsed = trio.current_time() - start
        assert len(smsc.messages) == 600
        assert 600 / elapsed >= 0.8 * 50  # the SMSC's rate, kept while replies wait
        assert 600 / elapsed <= 55
        assert gateway._rate.rate is not None and gateway._rate.rate < 100
        # All 600 were offered at once: the first burst is throttled; once the limit is
        # learned, throttled answers are a small share of the submits.
        later = throttled_at[-1] - throttled_at[0]
        assert later < 0.25 * (len(smsc.messages) - 100)


async def test_a_submit_waiting_for_a_rate_token_holds_no_window_slot(autojump_clock):
    async with linked(rate=1, window=2) as (smsc, gateway, _sink):
        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(submit_until_sent, gateway, out(i, f"m{i}",
                                                               f"+1206555{i:04d}"))
            await trio.sleep(0.5)  # one went at once; three wait for tokens
            assert gateway._window_in_use() == 0
            assert len(smsc.messages) == 1
        assert len(smsc.messages) == 4


async def test_a_configured_rate_caps_submits_per_second(autojump_clock):
    async with linked(rate=100) as (_smsc, gateway, _sink):
        start = trio.current_time()
        await _submit_many(gateway, 300)
        assert trio.current_time() - start >= 2.8


async def test_a_permanent_refusal_is_a_gateway_error(autojump_clock):
    async with linked() as (smsc, gateway, _sink):
        smsc.throttle(1, status=CommandStatus.ESME_RINVDSTADR)
        with pytest.raises(GatewayError) as caught:
            await gateway.submit(out(1))
        assert not isinstance(caught.value, GatewayRetryLater)
        assert "ESME_RINVDSTADR" in str(caught.value)


async def test_a_part_throttled_sends_only_the_missing_parts_later(autojump_clock):
    async with linked() as (smsc, gateway, _sink):
        parts = len(split(LONG_EMOJI, ref=1))
        assert parts > 2
        smsc.throttle(1, after=1)  # part 2 is throttled
        with pytest.raises(GatewayRetryLater) as caught:
            await gateway.submit(out(1, LONG_EMOJI))
        assert f"(part 2 of {parts})" in str(caught.value)
        first = await submit_until_sent(gateway, out(1, LONG_EMOJI))
        assert len(smsc.submits) == parts
        assert smsc.phones[THEIR] == [LONG_EMOJI]
        assert first == smsc.messages[0].message_ids[0] == "1"  # the first part's id


async def test_submit_timeout_retry_drops_the_link(autojump_clock):
    async with linked(submit_timeout=5) as (smsc, gateway, _sink):
        smsc.slow(60)
        with pytest.raises(GatewayRetryLater) as caught:
            await gateway.submit(out(1))
        assert "link went down" in str(caught.value)
        await gateway.bound.wait()
        assert smsc.binds == 2
        assert gateway.metrics.submit_timeouts._value.get() == 1


async def test_submit_timeout_unknown_keeps_the_link(autojump_clock):
    async with linked(submit_timeout=5, on_submit_timeout="unknown") as (smsc, gateway, _sink):
        smsc.slow(60)
        with pytest.raises(GatewayOutcomeUnknown) as caught:
            await gateway.submit(out(1))
        assert "no submit_sm_resp within 5s" in str(caught.value)
        assert await gateway.submit(out(2))
        await trio.sleep(60)  # the late answer is ignored
        assert smsc.binds == 1


@pytest.mark.parametrize("mode", ["udh", "udh16", "sar", "payload"])
@pytest.mark.parametrize("text", [LONG_EMOJI, LONG_GSM, "short ünïcode ✓", "€{}[]~|^\\"])
async def test_outbound_text_arrives_intact(autojump_clock, mode, text):
    async with linked(split=mode) as (smsc, gateway, _sink):
        await gateway.submit(out(1, text))
        assert smsc.phones[THEIR] == [text]


@pytest.mark.parametrize(("mode", "data_sm"), [("udh", False), ("udh16", False),
                                               ("sar", False), ("payload", False),
                                               ("payload", True), ("sar", True)])
@pytest.mark.parametrize("text", [LONG_EMOJI, LONG_GSM, "hi 👋"])
async def test_inbound_text_arrives_intact(autojump_clock, mode, data_sm, text):
    async with linked() as (smsc, _gateway, sink):
        await smsc.deliver(THEIR, OUR, text, mode=mode, data_sm=data_sm)
        assert [(m.their_number, m.our_number, m.text) for m in sink.messages] == [
            (THEIR, OUR, text)]


async def test_data_sm_parts_arriving_apart_are_answered_with_data_sm_resp(autojump_clock):
    async with linked() as (smsc, _gateway, sink):
        smsc.deliver_nowait(THEIR, OUR, LONG_GSM, mode="sar", data_sm=True)
        parts = [smsc._mo.pop() for _ in range(len(smsc._mo))][::-1]
        assert len(parts) > 1
        for part in parts:  # one part at a time, a second apart
            smsc._mo.append(part)
            smsc._wake_pumps()
            await trio.sleep(1)
        with trio.fail_after(20):
            await parts[0].delivery.acked.wait()
        assert smsc.wrong_responses == 0
        assert [m.text for m in sink.messages] == [LONG_GSM]


class _GatedSink(FakeSink):
    """A sink whose commits of texts wait until `gate` is set."""

    def __init__(self, gate: trio.Event):
        super().__init__()
        self.gate = gate

    async def inbound_many(self, messages):  # type: ignore[no-untyped-def]
        await self.gate.wait()
        return await super().inbound_many(messages)


async def test_deliver_sm_is_answered_only_after_the_commit(autojump_clock):
    gate = trio.Event()

    async with linked(sink=_GatedSink(gate)) as (smsc, _gateway, sink):
        delivery = smsc.deliver_nowait(THEIR, OUR, "wait for it")
        await trio.sleep(5)
        assert not delivery.acked.is_set()
        gate.set()
        await delivery.acked.wait()
        assert sink.messages[0].text == "wait for it"


async def test_a_receipt_is_answered_without_waiting_for_the_texts_commit(autojump_clock):
    gate = trio.Event()

    async with linked(sink=_GatedSink(gate)) as (smsc, _gateway, sink):
        text = smsc.deliver_nowait(THEIR, OUR, "held at the commit")
        receipt = smsc.deliver_pdu(smsc._receipt(Mt(OUR, THEIR, "hi", ("abc1",)), "abc1"))
        with trio.fail_after(5):
            await receipt.acked.wait()
        assert sink.receipts_seen == [DeliveryReceipt("abc1", "delivered")]
        assert not text.acked.is_set()
        gate.set()
        await text.acked.wait()


async def test_a_duplicate_deliver_sm_is_processed_once(autojump_clock):
    async with linked() as (smsc, _gateway, sink):
        smsc.duplicate_mo = 2
        await smsc.deliver(THEIR, OUR, "once")
        await smsc.deliver(THEIR, OUR, LONG_EMOJI)  # parts: the first part comes twice
        await trio.sleep(1)
        assert [m.text for m in sink.messages] == ["once", LONG_EMOJI]
        assert smsc.mo_acked == 1 + len(split(LONG_EMOJI, ref=1))


async def test_a_redelivery_after_a_lost_response_has_the_same_id(autojump_clock):
    async with linked() as (smsc, _gateway, sink):
        await smsc.deliver(THEIR, OUR, "again")
        await trio.sleep(90)
        await smsc.deliver(THEIR, OUR, "again")  # as if our resp was lost: same content
        assert len(sink.messages) == 1 and sink.duplicates == 1
        await trio.sleep(600)  # outside the dedupe window: a new message
        await smsc.deliver(THEIR, OUR, "again")
        assert len(sink.messages) == 2


async def test_missing_parts_are_given_up_after_the_reassembly_timeout(autojump_clock):
    async with linked(reassembly_timeout=30) as (smsc, gateway, sink):
        parts = split(LONG_GSM, ref=9)
        pdus = [DeliverSm(sequence=0, source_addr_ton=1, source_addr="12065550199",
                          dest_addr_ton=1, destination_addr="12065550100",
                          esm_class=p.esm_class, data_coding=p.data_coding,
                          short_message=p.short_message) for p in parts]
        deliveries = [smsc.deliver_pdu(pdu) for i, pdu in enumerate(pdus) if i != 1]
        await trio.sleep(10)
        assert not sink.messages and not deliveries[0].acked.is_set()
        for delivery in deliveries:
            await delivery.acked.wait()
        [message] = sink.messages
        assert "[…]" in message.text and message.text.startswith("A long GSM text")
        assert gateway.metrics.reassembly_incomplete._value.get() == 1


@pytest.mark.parametrize("kind", ["unknown_command", "bad_body"])
async def test_a_malformed_pdu_is_answered_and_the_link_lives(autojump_clock, kind):
    async with linked() as (smsc, gateway, sink):
        smsc.send_malformed(kind)
        await trio.sleep(1)
        if kind == "unknown_command":
            [nack] = smsc.generic_nacks
            assert nack.status == CommandStatus.ESME_RINVCMDID
        assert smsc.binds == 1
        assert await gateway.submit(out(1))
        await smsc.deliver(THEIR, OUR, "still here")
        assert sink.messages[-1].text == "still here"


async def test_an_unframeable_pdu_drops_the_link_and_it_rebinds(autojump_clock):
    async with linked() as (smsc, gateway, _sink):
        smsc.send_malformed("bad_length")
        await trio.sleep(5)
        [nack] = smsc.generic_nacks
        assert nack.status == CommandStatus.ESME_RINVCMDLEN
        assert smsc.binds == 2 and gateway.is_bound


async def test_an_unbind_from_the_smsc_is_answered_and_it_rebinds(autojump_clock):
    async with linked() as (smsc, gateway, _sink):
        smsc.unbind()
        await trio.sleep(5)
        assert smsc.binds == 2
        assert await gateway.submit(out(1))


async def test_stopping_unbinds(autojump_clock):
    smsc = Smsc()
    gateway = SmppGateway(connect=smsc.connect, system_id="intercept", password="secret")
    async with trio.open_nursery() as nursery:
        await nursery.start(smsc.run)
        async with trio.open_nursery() as inner:
            await inner.start(gateway.run, FakeSink())
            await gateway.submit(out(1))
            inner.cancel_scope.cancel()
        await trio.sleep(1)
        assert smsc.unbinds == 1
        nursery.cancel_scope.cancel()


async def test_metrics_on_the_given_registry(autojump_clock):
    registry = CollectorRegistry()
    async with linked(registry=registry) as (_smsc, gateway, sink):
        await gateway.submit(out(1))
        await sink.wait(lambda: sink.receipts_seen)

        def value(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, labels)

        assert value("intercept_smpp_pdus_total", direction="out", command="submit_sm",
                     status="ESME_ROK") == 1
        assert value("intercept_smpp_pdus_total", direction="in", command="submit_sm_resp",
                     status="ESME_ROK") == 1
        assert value("intercept_smpp_receipts_total", state="delivered") == 1
        assert value("intercept_smpp_bound") == 1
        assert value("intercept_smpp_window_in_use") == 0
        assert value("intercept_smpp_submit_seconds_count") == 1


async def test_a_message_smpp_cannot_carry_fails_without_logging_the_number(autojump_clock):
    too_long = "+1206555019912345678901"
    async with linked() as (_smsc, gateway, _sink):
        with pytest.raises(GatewayError) as caught:
            await gateway.submit(out(1, their=too_long))
        assert "destination_addr … is 22 octets long" in str(caught.value)
        assert too_long[1:] not in str(caught.value)
        assert await gateway.submit(out(2))  # the window slot came back
        assert gateway._window_in_use() == 0


async def test_a_receipt_in_another_id_form_settles_its_message(autojump_clock):
    """The SMSC answers the submit in upper-case hex with zeros and receipts in decimal."""
    smsc = Smsc(id_prefix="000")
    original_receipt = smsc._receipt

    def decimal_receipt(mt, message_id):  # type: ignore[no-untyped-def]
        pdu = original_receipt(mt, message_id)
        return msgspec.structs.replace(pdu, receipted_message_id=str(int(message_id, 16)))

    smsc._receipt = decimal_receipt
    async with linked(smsc, receipt_ids="submit-hex-receipt-decimal") as (smsc, gateway, sink):
        first = await submit_until_sent(gateway, out(1))
        await sink.wait(lambda: sink.receipts_seen)
        assert sink.receipts_seen == [DeliveryReceipt(first, "delivered")]


async def test_a_numbers_contracted_rate_spaces_its_messages(autojump_clock):
    other = "+12065550101"
    async with linked(number_rates={OUR: 2.0}) as (_smsc, gateway, _sink):
        start = trio.current_time()
        sent_at: dict[str, float] = {}

        async def send(i: int, our: str) -> None:
            message = OutboundMessage(outbox_id=f"{our}-{i}", our_number=our,
                                      their_number=f"+1206555{i:04d}", text=f"m{i}")
            while True:
                try:
                    await gateway.submit(message)
                    sent_at[message.outbox_id] = trio.current_time() - start
                    return
                except GatewayRetryLater as exc:
                    assert "contracted rate" in str(exc)
                    await trio.sleep(exc.retry_after)  # back in the queue, holding nothing

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(send, i, OUR)
                nursery.start_soon(send, i, other)
        ours = sorted(t for k, t in sent_at.items() if k.startswith(OUR))
        others = sorted(t for k, t in sent_at.items() if k.startswith(other))
        assert ours[-1] >= 2.4  # 6 messages at 2/s
        assert all(b - a >= 0.49 for a, b in itertools.pairwise(ours))
        assert others[-1] < 0.1  # a number without a contracted rate is not held up


async def test_a_store_that_cannot_commit_gets_a_temporary_error_and_the_smsc_redelivers(
        autojump_clock):
    from intercept.store import StoreUnavailable

    class FullDisk(FakeSink):
        """The disk is full the first time each message comes, then has room."""

        def __init__(self) -> None:
            super().__init__()
            self.tried: set[str] = set()
            self.refusals = 0

        async def inbound_many(self, messages):
            fresh = {m.gateway_id for m in messages} - self.tried
            if fresh:
                self.tried |= fresh
                self.refusals += 1
                raise StoreUnavailable("disk full")
            return await super().inbound_many(messages)

    async with linked(sink=FullDisk()) as (smsc, gateway, sink):
        with trio.fail_after(60):
            await smsc.deliver(THEIR, OUR, "short one")
            await smsc.deliver(THEIR, OUR, LONG_EMOJI)  # parts: reassembled again when redelivered
        assert sink.refusals == 2
        assert [m.text for m in sink.messages] == ["short one", LONG_EMOJI]
        assert sink.duplicates == 0
        from intercept.gateways.smpp import CommandId
        refused = gateway.metrics.pdu_counts[
            ("out", CommandId.DELIVER_SM_RESP, CommandStatus.ESME_RX_T_APPN)]
        assert refused >= 2  # the short one, then at least the parts of the long one
