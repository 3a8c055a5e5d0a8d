"""10,000 conversations at once through the sim gateway: nothing lost, duplicated or reordered."""

from __future__ import annotations

import pytest
import trio

from intercept.gateways import OutboundMessage

from helpers import OTHER_OUR, OUR, make_config, running

CONVERSATIONS = 10_000
LINES = ("hey", "how much", "tonight?")


@pytest.mark.slow
async def test_ten_thousand_concurrent_conversations(tmp_path, autojump_clock):
    config = make_config(runtime={"hibernate_after": "1h"})
    async with running(tmp_path, config) as (server, phones):
        waiting: dict[str, trio.Event] = {}
        peak_live = 0

        def on_reply(message: OutboundMessage) -> None:
            event = waiting.pop(message.their_number, None)
            if event is not None:
                event.set()

        server.gateway.subscribe(on_reply)

        async def buyer(i: int) -> None:
            nonlocal peak_live
            their = f"+1{300 + i // 10_000:03d}555{i % 10_000:04d}"
            ours = OUR if i % 2 else OTHER_OUR
            for line in LINES:
                event = waiting[their] = trio.Event()
                await server.gateway.inject(their_number=their, our_number=ours,
                                            text=f"{line} #{i}")
                await event.wait()
                peak_live = max(peak_live, len(server.router.actors))

        async with trio.open_nursery() as nursery:
            for i in range(CONVERSATIONS):
                nursery.start_soon(buyer, i)

        assert peak_live == CONVERSATIONS
        assert len(phones.all) == CONVERSATIONS * len(LINES)
        for i in range(CONVERSATIONS):
            their = f"+1{300 + i // 10_000:03d}555{i % 10_000:04d}"
            assert phones.by_number[their] == [f"re: {line} #{i}" for line in LINES], their
        ids = [m.outbox_id for m in phones.all]
        assert len(set(ids)) == len(ids)
        counts = server.store.query(
            "SELECT (SELECT count(*) FROM inbound), (SELECT count(*) FROM outbox), "
            "(SELECT count(*) FROM conversations WHERE processed_count = 3)")
        assert counts == [(30_000, 30_000, 10_000)]
