"""The runtime carries out every effect the engine can return: tags, transitions, lookups,
hand-off, opt-out (enforced in the send path) and human-like delay settings."""

from __future__ import annotations

import trio

from intercept.runtime.lookups import number_metadata

from helpers import BUYER, OUR, make_config, running, say, scripted_registry


async def test_tags_and_transitions_are_stored_and_counted(tmp_path, autojump_clock):
    config = make_config("scripted")
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        first = await say(server, "tag")
        await say(server, "go")
        assert phones.by_number[BUYER] == ["tagged", "went"]
        assert server.store.query("SELECT name FROM tags") == [("asked-price",)]
        assert server.store.query(
            "SELECT source, target, trigger, turn FROM transitions ORDER BY id") == [
            ("", "wait", "start", 1), ("wait", "next", "expect[0]", 3)]
        registry = server.metrics.registry
        assert registry.get_sample_value("intercept_scenario_transitions_total", {
            "scenario": "scripted", "source": "wait", "target": "next"}) == 1
        assert registry.get_sample_value("intercept_scenario_transitions_total", {
            "scenario": "scripted", "source": "-", "target": "wait"}) == 1
        assert first.conversation_id == 1


async def fake_number_lookup(their: str, ours: str) -> dict[str, str]:
    await trio.sleep(2)  # a provider takes a while; the conversation waits for it
    return {"region": "US", "valid": "yes"}


async def slow_lookup(their: str, ours: str) -> dict[str, str]:
    await trio.sleep(60)
    return {}


def test_number_metadata_is_read_offline():
    fields = number_metadata("+12065550100")
    assert fields["valid"] == "yes" and fields["region"] == "US"
    assert fields["timezone"] == "America/Los_Angeles"
    assert fields["type"] in ("fixed_line_or_mobile", "mobile", "fixed_line")


async def test_a_lookup_answer_comes_back_as_an_event(tmp_path, autojump_clock):
    config = make_config("scripted")
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        server.router.lookups.register("number", fake_number_lookup)
        await say(server, "lookup")
        with trio.fail_after(30):
            while not phones.all:
                await trio.sleep(0.1)
        assert phones.by_number[BUYER] == ["lookup number ok=True region=US"]
        await say(server, "nolookup")
        with trio.fail_after(30):
            while len(phones.all) < 2:
                await trio.sleep(0.1)
        assert phones.by_number[BUYER][1] == "lookup caller_name ok=False region=?"
        assert server.store.query("SELECT pending_lookup FROM conversations") == [(None,)]
        server.router.lookups.register("number", slow_lookup)
        await say(server, "lookup")
        with trio.fail_after(30):
            while len(phones.all) < 3:
                await trio.sleep(0.1)
        assert phones.by_number[BUYER][2] == "lookup number ok=False region=?"  # timed out
        assert server.metrics.registry.get_sample_value(
            "intercept_lookups_total", {"kind": "number", "result": "failed"}) == 1


async def test_a_lookup_pending_at_a_crash_is_redone_on_restart(tmp_path, autojump_clock):
    config = make_config("scripted")
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        await say(server, "hello")
    # As if the process died after committing the step that asked for the lookup.
    from intercept.store import connect

    db = connect(tmp_path / "test.db")
    db.execute("UPDATE conversations SET pending_lookup = 'number'")
    db.conn.close()
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        server.router.lookups.register("number", fake_number_lookup)
        with trio.fail_after(30):
            while not phones.all:
                await trio.sleep(0.1)
        assert phones.by_number[BUYER] == ["lookup number ok=True region=US"]


async def test_hand_off_silences_the_bot_until_resumed(tmp_path, autojump_clock):
    config = make_config("scripted")
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        await say(server, "human")
        await say(server, "hello? anyone")
        assert phones.by_number[BUYER] == ["a person will text you"]
        assert server.store.query("SELECT status FROM conversations") == [("handed_off",)]
        assert server.metrics.registry.get_sample_value("intercept_handoffs_total") == 1


async def test_opt_out_is_enforced_where_messages_are_sent(tmp_path, autojump_clock):
    config = make_config("scripted", delays={"enabled": True, "min": "30s", "max": "30s",
                                             "jitter": 0.0})
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="hello")
        await trio.sleep(1)  # the reply to "hello" is still waiting for its delay...
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="stop")
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="STOP")
        last = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="more")
        await server.settled(last.conversation_id, last.conv_seq)
        # ...so only the single confirmation goes out: no reply, no second confirmation.
        assert phones.by_number[BUYER] == ["You are unsubscribed. Reply START to resume."]
        statuses = dict(server.store.query("SELECT body, status FROM outbox"))
        assert statuses["re: hello"] == "refused" and statuses["re: more"] == "refused"
        assert server.store.query("SELECT number, opted_out FROM opt_outs") == [(BUYER, 1)]
        assert server.metrics.registry.get_sample_value("intercept_messages_refused_total") == 2
        await say(server, "START")
        await say(server, "again")
        assert phones.by_number[BUYER][1:] == ["Welcome back.", "re: again"]


async def test_opt_out_survives_a_restart(tmp_path, autojump_clock):
    config = make_config("scripted")
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        await say(server, "STOP")
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        await say(server, "hello")
        assert phones.all == []


async def test_scenario_delay_settings_slow_a_reply(tmp_path, autojump_clock):
    config = make_config("scripted", delays={"enabled": True, "min": "3s", "max": "3s",
                                             "jitter": 0.0})
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        start = trio.current_time()
        await server.gateway.inject(their_number=BUYER, our_number=OUR, text="slow")
        with trio.fail_after(600):
            while not phones.all:
                await trio.sleep(0.5)
        assert 66 <= trio.current_time() - start <= 67  # 3 s x 2 + 60 s busy pause


async def test_opt_out_words_work_in_any_scenario(tmp_path, autojump_clock):
    """The echo scenario knows nothing of STOP: the runtime handles it, once."""
    words = ["STOP", "stop pls", "Stop texting me", "sToPaLl", "UNSUBSCRIBE now", "cancel!!",
             "End", "quit.", "REVOKE", "optout", "opt-out please", "Opt out"]
    async with running(tmp_path) as (server, phones):
        for i, word in enumerate(words):
            their = f"+1206555{6000 + i:04d}"
            await say(server, "hi", their)
            await say(server, word, their)
            await say(server, word, their)  # a second STOP gets no second confirmation
            await say(server, "hello?", their)
            confirmation = server.config.optout.confirmation
            assert phones.by_number[their] == ["re: hi", confirmation], word
        refused = server.store.query("SELECT count(*) FROM outbox WHERE status = 'refused'")
        # the scenario's reading of a STOP it did not recognise is dropped (no reply is even
        # queued); its reply to the later "hello?" is refused by the send path
        assert refused == [(len(words),)]


async def test_start_and_help_work_in_any_scenario(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        await say(server, "stop")
        await say(server, "Start")
        await say(server, "hi")
        texts = server.config.optout
        assert phones.by_number[BUYER] == [texts.confirmation, texts.opt_in_confirmation,
                                           "re: Start", "re: hi"]
        await say(server, "HELP me")
        assert phones.by_number[BUYER][-1] == "re: HELP me"  # the scenario answered it
        assert server.store.query("SELECT opted_out FROM opt_outs") == [(0,)]


async def test_help_is_answered_when_the_scenario_says_nothing(tmp_path, autojump_clock):
    config = make_config("scripted")
    async with running(tmp_path, config, reg=scripted_registry()) as (server, phones):
        await say(server, "finish")
        await say(server, "help")
        assert phones.by_number[BUYER] == ["bye", server.config.optout.help]
        await say(server, "human", "+12065550198")
        await say(server, "info?", "+12065550198")  # handed off: the advocate answers
        assert phones.by_number["+12065550198"] == ["a person will text you"]
