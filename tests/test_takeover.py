"""A human takes a conversation over, the bot falls silent, and the human hands it back."""

from __future__ import annotations

import pytest
import trio

from helpers import BUYER, make_config, running, say, scripted_registry


async def test_take_over_silences_the_bot_until_hand_back(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        first = await say(server, "hi")
        await server.take_over(first.conversation_id, "Hi, this is Sam. Can I help?",
                               author="advocate-1")
        await say(server, "who is this")
        await say(server, "ok")
        await trio.sleep(60)
        assert phones.by_number[BUYER] == ["re: hi", "Hi, this is Sam. Can I help?"]
        assert server.store.query("SELECT operator, processed_count FROM conversations") == [
            (1, 3)]
        await server.hand_back(first.conversation_id, author="advocate-1")
        await say(server, "back to you")
        assert phones.by_number[BUYER][-1] == "re: back to you"
        kinds = server.store.query("SELECT kind, count(*) FROM outbox GROUP BY kind")
        assert kinds == [("operator", 1), ("reply", 2)]


async def test_take_over_survives_a_restart(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        first = await say(server, "hi")
        await server.take_over(first.conversation_id, "a human here", author="a")
    async with running(tmp_path) as (server, phones):
        await say(server, "still there?")
        assert phones.all == []


async def test_hand_back_resumes_a_handed_off_conversation(tmp_path, autojump_clock):
    config = make_config("scripted")
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        first = await say(server, "human")
        await say(server, "hello?")
        await server.hand_back(first.conversation_id, author="advocate-1")
        with trio.fail_after(10):
            while len(phones.all) < 2:
                await trio.sleep(0.1)
        assert phones.by_number[BUYER] == ["a person will text you", "back"]
        await say(server, "thanks")
        assert phones.by_number[BUYER][-1] == "re: thanks"


async def test_take_over_refuses_what_cannot_be_sent(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        with pytest.raises(LookupError):
            await server.take_over(99, "hello", author="a")
        with pytest.raises(LookupError):
            await server.hand_back(99, author="a")
        first = await say(server, "STOP")
        with pytest.raises(PermissionError):
            await server.take_over(first.conversation_id, "please talk to me", author="a")
        with pytest.raises(ValueError):
            await server.take_over(first.conversation_id, "  ", author="a")
        await trio.sleep(10)
        assert phones.by_number[BUYER] == [server.config.optout.confirmation]


