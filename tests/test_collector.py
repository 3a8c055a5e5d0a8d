"""The collector: what the server keeps out of its walks (foundation/collector.py)."""

from __future__ import annotations

import gc
import weakref
from functools import partial

import msgspec
import pytest
import trio
import trio.testing

from intercept.engine import ConversationState, Message, Start
from intercept.foundation import collector
from intercept.gateways import SimGateway
from intercept.runtime import Inbound
from intercept.server import Server

from helpers import BUYER, OUR, make_config, registry, running


def test_conversation_states_are_never_tracked_by_the_collector():
    machine = registry().current("echo")
    assert machine is not None
    state = machine.new_state(seed=1, context={"persona.name": "Jasmine"})
    state, _ = machine.step(state, Start(), now=0.0)
    state, _ = machine.step(state, Message("hey"), now=1.0)
    decoded = msgspec.json.decode(msgspec.json.encode(state), type=ConversationState)
    made = ConversationState(scenario="s", version=1, vars={"a": "b"}, returns=["x"])
    for one in (state, decoded, made):
        assert not gc.is_tracked(one)
    # the same fields in a struct without gc=False are tracked: the untracking is the flag's
    tracked = msgspec.defstruct("Tracked", [("returns", list[str])])(returns=["x"])
    assert gc.is_tracked(tracked)


def test_tune_sets_the_chosen_thresholds():
    before = gc.get_threshold()
    try:
        collector.tune()
        assert gc.get_threshold() == collector.THRESHOLDS
    finally:
        gc.set_threshold(*before)


def test_freeze_collects_first_and_freezes_what_is_alive():
    try:
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle: collected, not frozen
        ref = id(garbage)
        del garbage
        alive: list[object] = [object()]
        alive.append(alive)
        count = collector.freeze()
        assert count == gc.get_freeze_count() > 0
        assert all(id(o) != id(alive) for o in gc.get_objects())  # out of the walks
        assert all(id(o) != ref for o in gc.get_objects())
    finally:
        gc.unfreeze()


def test_what_survives_a_collection_is_frozen_while_freezing_survivors():
    gc.unfreeze()
    try:
        with collector.freezing_survivors():
            alive: list[object] = []
            alive.append(alive)
            gc.collect(0)
            assert gc.get_freeze_count() > 0
            assert all(o is not alive for o in gc.get_objects())  # out of every walk
        gc.unfreeze()
        later: list[object] = []
        gc.collect(0)  # outside: collections freeze nothing
        assert gc.get_freeze_count() == 0
        assert any(o is later for o in gc.get_objects())
    finally:
        gc.unfreeze()


def test_a_sweep_frees_the_cycles_that_died_frozen():
    class Node:
        pass

    gc.unfreeze()
    try:
        with collector.freezing_survivors():
            node = Node()
            node.itself = node  # type: ignore[attr-defined]
            dead = weakref.ref(node)
            gc.collect(0)  # alive: survives, frozen
            del node  # dies in a cycle while frozen: no collection frees it
            gc.collect()
            assert dead() is not None
            swept = collector.sweep()
        assert dead() is None
        assert swept.freed >= 1 and swept.frozen > 0 and swept.seconds >= 0
        assert gc.get_freeze_count() > 0  # what is alive is frozen again
    finally:
        gc.unfreeze()


def test_a_sweeps_pause_is_labelled_apart_from_the_collections():
    from intercept.foundation.metrics import Metrics

    metrics = Metrics()
    try:
        with metrics.watching_gc():
            gc.collect(0)
            collector.sweep()
        counts = {labels["generation"]: value for labels, value in (
            (s.labels, s.value) for m in metrics.gc_pause_seconds.collect() for s in m.samples
            if s.name.endswith("_count"))}
        assert counts["sweep"] == 1 and counts["0"] >= 1
        assert "2" not in counts  # the sweep's full collection is not counted as one
        assert not collector.sweeping()
    finally:
        gc.unfreeze()


async def test_keep_frozen_sweeps_on_its_schedule(autojump_clock):
    gc.unfreeze()
    sweeps: list[collector.Sweep] = []
    try:
        async with trio.open_nursery() as nursery:
            young = gc.get_stats()[0]["collections"]
            nursery.start_soon(partial(collector.keep_frozen, 60.0, sweeps.append,
                                       young_every=1.0))
            await trio.sleep(150.5)
            assert len(sweeps) == 2
            # and a young collection each second between them (not counted by CPython's
            # young-generation count, which old objects dying can hold down)
            assert gc.get_stats()[0]["collections"] - young >= 140
            assert collector._freeze_after in gc.callbacks
            nursery.cancel_scope.cancel()
        assert collector._freeze_after not in gc.callbacks
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("freeze", [True, False])
async def test_a_server_freezes_after_start_up_only_when_asked(tmp_path, freeze):
    gc.unfreeze()
    try:
        gateway = SimGateway(receipts=False)
        server = Server(make_config(), registry=registry(), gateway=gateway,
                        store_path=tmp_path / "t.db", threaded_store=False, own_process=freeze)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            assert (gc.get_freeze_count() > 0) is freeze
            await trio.testing.wait_all_tasks_blocked()
            assert (collector._freeze_after in gc.callbacks) is freeze  # survivors too
            await gateway.inject(their_number="+12065550199", our_number=OUR, text="hi")
            server.stop()
        assert collector._freeze_after not in gc.callbacks
    finally:
        gc.unfreeze()


async def test_a_waiting_actor_keeps_no_message_it_has_taken(tmp_path, autojump_clock):
    async with running(tmp_path) as (server, phones):
        for i, text in enumerate(["first words", "second words", "third words"]):
            await server.gateway.inject(their_number=BUYER, our_number=OUR, text=text)
            await phones.wait_for(i + 1)
        await trio.testing.wait_all_tasks_blocked()
        assert len(server.router.actors) == 1  # live, waiting for the next message
        gc.collect()
        kept = [o for o in gc.get_objects() if type(o) is Inbound]
        assert kept == []
