"""A message with more media URLs than ``media.max_per_message`` keeps the first ones only."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest
import trio

from intercept.errors import ConfigError
from intercept.gateways import SimGateway
from intercept.server import Server

from helpers import OUR, make_config, registry

BUYER = "+12065550199"


async def test_media_past_the_cap_are_counted_and_dropped_not_stored(tmp_path, caplog):
    config = make_config(media={"enabled": False})
    gateway = SimGateway()
    server = Server(config, registry=registry(), gateway=gateway, store_path=tmp_path / "m.db")
    urls = tuple(f"https://api.twilio.com/m/{i}.jpg" for i in range(2000))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with caplog.at_level(logging.WARNING, logger="intercept.buyers.media"):
            await gateway.inject(their_number=BUYER, our_number=OUR, text="look", media=urls)
        server.stop()
    with sqlite3.connect(tmp_path / "m.db") as db:
        rows = [r[0] for r in db.execute("SELECT url FROM media ORDER BY position")]
        (stored,) = db.execute("SELECT media FROM inbound").fetchone()
    assert rows == list(urls[:10]) and json.loads(stored) == list(urls[:10])
    assert server.metrics.registry.get_sample_value(
        "intercept_media_total", {"result": "dropped"}) == 1990
    assert "came with 2000 media URLs: kept the first 10 (media.max_per_message), dropped 1990" \
        in caplog.text
    assert BUYER not in caplog.text


def test_the_cap_cannot_be_negative():
    with pytest.raises(ConfigError, match=r"media.*max_per_message is -1; use 0 or more"):
        make_config(media={"max_per_message": -1})
