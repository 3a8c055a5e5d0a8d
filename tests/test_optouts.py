"""`OptOuts` (runtime/optouts.py): the one authority on who may be texted, shared by every path
that sends and told by every path that learns of an opt-out."""

from __future__ import annotations

import logging

from intercept.store import OutboxRow

from helpers import OUR, running

BUYER = "+12065550199"


def row(kind: str = "reply", their: str = BUYER) -> OutboxRow:
    return OutboxRow(id="1.1.0", conversation_id=1, position=100, our_number=OUR,
                     their_number=their, body="hi", not_before=0.0, kind=kind)


def opt_out_count(server) -> float:
    return server.metrics.registry.get_sample_value("intercept_opt_outs_total") or 0.0


async def test_every_part_asks_the_same_authority(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _):
        optouts = server.optouts
        assert server.sender.optouts is optouts
        assert server.router.services.optouts is optouts
        assert server.campaigns.services.optouts is optouts


async def test_record_and_may_send(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _):
        optouts = server.optouts
        assert BUYER not in optouts and optouts.may_send(row())
        optouts.record(BUYER, True)
        optouts.record(BUYER, True)  # counted once
        assert BUYER in optouts and len(optouts) == 1 and opt_out_count(server) == 1
        assert not optouts.may_send(row())
        assert optouts.may_send(row("confirmation"))  # the single confirmation still goes
        assert optouts.may_send(row(their="+12065550198"))
        optouts.record(BUYER, False)
        assert BUYER not in optouts and optouts.may_send(row())


async def test_a_stop_tells_it_and_a_start_takes_it_back(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _):
        stop = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="stop pls")
        await server.settled(stop.conversation_id, stop.conv_seq)
        assert BUYER in server.optouts
        start = await server.gateway.inject(their_number=BUYER, our_number=OUR, text="START")
        await server.settled(start.conversation_id, start.conv_seq)
        assert BUYER not in server.optouts


async def test_the_carrier_path_commits_and_logs_the_number_masked(tmp_path, autojump_clock,
                                                                    caplog):
    caplog.set_level(logging.INFO, logger="intercept.runtime.optouts")
    async with running(tmp_path) as (server, _):
        await server.carrier_opt_out(BUYER)
        await server.carrier_opt_out(BUYER)  # already known: committed once, logged once
        assert BUYER in server.optouts
        assert server.store.query("SELECT number, opted_out FROM opt_outs") == [(BUYER, 1)]
        logged = [r.getMessage() for r in caplog.records if "carrier" in r.getMessage()]
        assert len(logged) == 1 and BUYER not in logged[0]


async def test_opt_outs_are_read_back_on_start(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, _):
        await server.carrier_opt_out(BUYER)
    async with running(tmp_path) as (server, _):
        assert BUYER in server.optouts
        assert opt_out_count(server) == 1  # as before OptOuts: the counter restarts from it
