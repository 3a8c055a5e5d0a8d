"""Outreach (victim) data never mixes with buyer data: conversation kinds and the buyer-only gate
that law-enforcement exports are built on."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from intercept.config import config_from_dict
from intercept.errors import ConfigError
from intercept.store.reads import buyer_conversation_ids, buyer_numbers

from helpers import DECOY, SEND, add_ads, outreach_config, running, shipped

TARGET, IN_ADS, WALK_IN, BUYER, STRANGER = (
    "+12065550141", "+12065550142", "+12065550143", "+12065550199", "+12065550188")
UNCONFIGURED = "+12065550177"


async def _text(server: Any, their: str, ours: str, text: str) -> int:
    done = await server.gateway.inject(their_number=their, our_number=ours, text=text)
    if ours != UNCONFIGURED:  # a number not in the config: stored, never processed
        await server.settled(done.conversation_id, done.conv_seq)
    return done.conversation_id


async def test_buyer_queries_never_return_outreach_conversations_messages_or_numbers(
        tmp_path, autojump_clock):
    add_ads(tmp_path / "test.db", [TARGET, IN_ADS])
    config = outreach_config({"name": "spring", "window": "00:00-24:00"})
    async with running(tmp_path, config, reg=shipped()) as (server, phones):
        await server.campaigns.start("spring", actor="test")
        await trio.sleep(600)  # TARGET and IN_ADS get the campaign's text
        contacted = await _text(server, TARGET, SEND, "who is this?")
        buyer = await _text(server, BUYER, DECOY, "hey u available tonight?")
        ad_number_at_decoy = await _text(server, IN_ADS, DECOY, "hey")
        walk_in = await _text(server, WALK_IN, SEND, "hello, I need help")
        walk_in_at_decoy = await _text(server, WALK_IN, DECOY, "hi there")
        unknown = await _text(server, STRANGER, UNCONFIGURED, "hello")
        kinds = dict(server.store.query("SELECT id, kind FROM conversations"))
        assert kinds[contacted] == kinds[walk_in] == "outreach"
        assert kinds[buyer] == kinds[ad_number_at_decoy] == kinds[walk_in_at_decoy] == "buyer"
        assert kinds[unknown] is None
        conn = server.store.db.conn
        ids = buyer_conversation_ids(conn)
        assert ids == [buyer]
        assert buyer_numbers(conn) == [BUYER]
        outreach_ids = {i for i, k in kinds.items() if k != "buyer"}
        assert not outreach_ids & set(ids)
        marks = ",".join("?" * len(ids))
        bodies = {b for (b,) in server.store.query(
            f"SELECT body FROM inbound WHERE conversation_id IN ({marks}) UNION ALL "
            f"SELECT body FROM outbox WHERE conversation_id IN ({marks})", (*ids, *ids))}
        outreach_bodies = {b for (b,) in server.store.query(
            "SELECT o.body FROM outbox o JOIN conversations c ON c.id = o.conversation_id "
            "WHERE c.kind = 'outreach' UNION SELECT i.body FROM inbound i JOIN conversations c "
            "ON c.id = i.conversation_id WHERE c.kind = 'outreach'")}
        assert outreach_bodies and not bodies & outreach_bodies
        numbers = {n for (n,) in server.store.query(
            f"SELECT their_number FROM conversations WHERE id IN ({marks})", ids)}
        assert numbers == {BUYER}
        created = server.store.query("SELECT created_at FROM conversations WHERE id = ?",
                                     (buyer,))[0][0]
        assert buyer_conversation_ids(conn, since=created) == [buyer]
        assert buyer_conversation_ids(conn, since=created + 1) == []
        assert buyer_conversation_ids(conn, until=created) == []
        assert buyer_conversation_ids(conn, our_numbers=(DECOY,)) == [buyer]
        assert buyer_conversation_ids(conn, our_numbers=(SEND,)) == []
        assert buyer_conversation_ids(conn, our_numbers=()) == []
        assert phones.by_number[TARGET]  # the outreach conversation did happen


def _config_with(number_kind: str, extra: list[dict[str, Any]] | None = None) -> Any:
    return config_from_dict({
        "cities": {"seattle": {"name": "Seattle", "link": "https://x"}},
        "numbers": [{"number": SEND, "city": "seattle", "scenario": "victim-outreach",
                     "kind": number_kind, "persona": {"name": "Maya"}}, *(extra or [])],
        "http": {"enabled": False}, "delays": {"enabled": False}}, environ={})


async def test_an_outreach_number_stays_outreach_and_old_conversations_get_a_kind(
        tmp_path, autojump_clock):
    async with running(tmp_path, _config_with("outreach"), reg=shipped()) as (server, _):
        await _text(server, WALK_IN, SEND, "hello")
        stranger = await _text(server, STRANGER, UNCONFIGURED, "hello")
        assert server.store.query("SELECT kind FROM conversations WHERE id = ?",
                                  (stranger,)) == [(None,)]
    with pytest.raises(BaseExceptionGroup) as info:
        async with running(tmp_path, _config_with("buyer"), reg=shipped()):
            pass  # pragma: no cover - the start is refused
    (error,) = info.value.exceptions
    while isinstance(error, BaseExceptionGroup):
        (error,) = error.exceptions
    assert isinstance(error, ConfigError)
    assert f"numbers: {SEND} carried outreach conversations; it cannot become a buyer number" \
        in str(error)
    decoy = {"number": UNCONFIGURED, "city": "seattle", "scenario": "victim-outreach",
             "kind": "buyer", "persona": {"name": "Jo"}}
    async with running(tmp_path, _config_with("outreach", [decoy]), reg=shipped()) as (
            server, _):
        kinds = dict(server.store.query("SELECT their_number, kind FROM conversations"))
        assert kinds == {WALK_IN: "outreach", STRANGER: "buyer"}  # filled in at the start
