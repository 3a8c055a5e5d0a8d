"""`runtime.read_limit`: the server's scenarios match on the first characters of a reply only,
and the whole reply is still stored (issue 13, finding 1)."""

from __future__ import annotations

import trio

from intercept.gateways import SimGateway
from intercept.server import Server

from helpers import OUR, Phones, make_config

SCENARIO = """
name: priced
version: {version}
start: wait
states:
  wait:
    expect:
      - keywords: [price]
        goto: hit
      - otherwise: true
        goto: miss
  hit:
    say: "hit"
    goto: wait
  miss:
    say: "miss"
    goto: wait
"""


async def test_the_configured_read_limit_reaches_every_scenario_the_server_loads(
        tmp_path, autojump_clock):
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "priced.yaml").write_text(SCENARIO.format(version=1))
    config = make_config("priced", scenarios={"dir": str(folder)},
                         runtime={"read_limit": 200})
    server = Server(config, gateway=SimGateway(receipts=False), store_path=tmp_path / "r.db",
                    threaded_store=False)
    assert server.registry.current("priced").read_limit == 200
    phones = Phones(server.gateway)
    their = "+12065553000"
    late, early = "x" * 300 + " price", "price " + "x" * 300
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        for text in (late, early):
            done = await server.gateway.inject(their_number=their, our_number=OUR, text=text)
            await server.settled(done.conversation_id, done.conv_seq)
        await phones.wait_for(2)
        assert phones.by_number[their] == ["miss", "hit"]
        stored = server.store.query("SELECT body FROM inbound ORDER BY conv_seq")
        assert stored == [(late,), (early,)]  # the whole text, not what the engine read
        (folder / "priced.yaml").write_text(SCENARIO.format(version=2))
        await server.reload_scenarios()
        assert server.registry.current("priced").version == 2
        assert server.registry.current("priced").read_limit == 200
        server.stop()
