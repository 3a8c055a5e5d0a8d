"""`runtime.read_limit`: the server's scenarios match on the first characters of a reply only,
and the whole reply is still stored (issue 13, finding 1)."""

from __future__ import annotations

import pytest
import trio

from intercept.config import load_config
from intercept.errors import ConfigError
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


def test_a_read_limit_below_one_sms_is_refused_with_the_key_named(tmp_path):
    config_file = tmp_path / "intercept.toml"
    config_file.write_text("[runtime]\nread_limit = 10\n")
    with pytest.raises(ConfigError,
                       match=r"intercept.toml: runtime.read_limit: expected 'int' >= 160"):
        load_config(config_file, environ={})
    assert load_config(config_file, environ={"INTERCEPT_RUNTIME_READ_LIMIT": "3000"}
                       ).runtime.read_limit == 3000
