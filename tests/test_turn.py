"""`take_turn`, the pure turn: merging, the STOP / START / HELP override and its single
confirmation, outbox row ids, times and status. Plain synchronous tests: no trio, no store."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import msgspec

from intercept.config import OptOutConfig
from intercept.engine import LookupResult, Message, OptOut, Start, TimerFired, compile_text
from intercept.runtime.delays import DelayModel
from intercept.runtime.turn import Inbound, Turn, TurnInput, TurnRules, take_turn

T0 = 1_700_000_000.0
SCENARIO = """
name: talk
version: 3
start: wait
settings:
  merge: 10s
states:
  wait:
    expect:
      - keywords: [bye]
        goto: done
      - keywords: [boss]
        goto: human
      - otherwise: true
        goto: reply
  reply:
    say: "re: {message}"
    tag: replied
    goto: wait
  human:
    handoff: {reason: "asked for the boss", resume: wait}
  done:
    say: "bye"
    end: finished
"""
MACHINE = compile_text(SCENARIO)
TEXTS = OptOutConfig(confirmation="you are out", opt_in_confirmation="you are in",
                     help="text STOP to stop")
FAST = TurnRules(optout=TEXTS, delays=DelayModel(enabled=False), merge=False)


def started(rules: TurnRules = FAST) -> Turn:
    state = MACHINE.new_state(seed=1, context={})
    return take_turn(TurnInput(7, "+12065550100", "+12065551234", MACHINE, state), T0, rules)


def then(turn: Turn, *texts: str, at: float = T0, rules: TurnRules = FAST,
         opted_out: bool = False, first: int | None = None) -> Turn:
    """The turn after `turn` when `texts` arrived (conv_seq from `first`) at `at`."""
    first = turn.processed + 1 if first is None else first
    pending = {first + i: Inbound(first + i, text, (), at) for i, text in enumerate(texts)}
    return take_turn(TurnInput(7, "+12065550100", "+12065551234", MACHINE, turn.state,
                               processed=turn.processed, pending=pending,
                               last_not_before=turn.last_not_before, opted_out=opted_out),
                     at, rules)


def bodies(turn: Turn) -> list[tuple[str, str]]:
    return [(r.body, r.kind) for r in turn.rows]


def test_the_first_turn_starts_the_conversation():
    turn = started()
    assert turn.taken and turn.started and turn.state.started and turn.status == "active"
    assert [type(s.event) for s in turn.steps] == [Start]
    assert turn.rows == () and turn.commit is not None and turn.commit.turn == turn.state.turn


def test_a_reply_gets_a_deterministic_row():
    turn = then(started(), "hello")
    assert bodies(turn) == [("re: hello", "reply")]
    row = turn.rows[0]
    assert row.id == f"7.{turn.state.turn}.0" and row.position == turn.state.turn * 100
    assert (row.our_number, row.their_number, row.not_before) == ("+12065550100",
                                                                 "+12065551234", T0)
    assert turn.tags == ("replied",) and turn.processed == 1
    assert [(t.source, t.target) for t in turn.transitions] == [("wait", "reply"),
                                                                ("reply", "wait")]
    commit = turn.commit
    assert commit is not None and commit.outbox == list(turn.rows)
    assert commit.processed_count == 1 and commit.status == "active"
    assert msgspec.json.decode(commit.state)["node"] == "wait"
    assert then(started(), "hello").rows == turn.rows  # same input, same rows


def test_reply_times_follow_the_delay_model_and_never_overtake():
    rules = TurnRules(optout=TEXTS, delays=DelayModel(minimum=5, maximum=5, jitter=0),
                      merge=False)
    turn = then(started(rules), "hello", rules=rules)
    assert [r.not_before for r in turn.rows] == [T0 + 5]
    later = take_turn(TurnInput(7, "a", "b", MACHINE, turn.state, processed=1,
                                pending={2: Inbound(2, "again", (), T0 + 1)},
                                last_not_before=T0 + 100), T0 + 1, rules)
    assert [r.not_before for r in later.rows] == [T0 + 100]  # not before the previous one


def test_fragments_wait_for_the_quiet_period_then_go_as_one_message():
    rules = TurnRules(optout=TEXTS, delays=DelayModel(enabled=False), merge=True)
    first = started(rules)
    early = then(first, "hey", "u there", at=T0 + 5, rules=rules)
    assert not early.taken and early.wake_at == T0 + 15 and early.commit is None
    late = take_turn(TurnInput(7, "a", "b", MACHINE, first.state,
                               pending={1: Inbound(1, "hey", (), T0 + 5),
                                        2: Inbound(2, "u there", (), T0 + 5)}),
                     T0 + 15, rules)
    assert bodies(late) == [("re: hey\nu there", "reply")] and late.processed == 2
    assert isinstance(late.steps[0].event, Message)


def test_nothing_ready_and_a_gap_waits():
    turn = then(started(), "later", first=3)  # message 2 has not arrived
    assert not turn.taken and turn.wake_at == math.inf and turn.processed == 0


def test_an_unrecognised_stop_is_overridden_with_one_confirmation():
    before = then(started(), "hello")
    turn = then(before, "stop pls")
    assert bodies(turn) == [("you are out", "confirmation")] and turn.opt_out is True
    # the scenario's reading of the message is dropped: no tag, no transition, no reply
    assert turn.tags == () and turn.transitions == ()
    assert turn.state.node == before.state.node and turn.state.turn == before.state.turn + 1
    assert [type(e) for e in turn.steps[0].effects] == [OptOut]
    again = then(turn, "STOP", opted_out=True)
    assert again.rows == () and again.opt_out is True  # a second STOP gets no answer


def test_start_and_help_are_answered_when_the_scenario_is_silent():
    out = then(started(), "stop")
    back = then(out, "start", opted_out=True)
    assert bodies(back) == [("you are in", "confirmation"), ("re: start", "reply")]
    assert back.opt_out is False
    helped = then(started(), "help")
    assert bodies(helped) == [("re: help", "reply")]  # the scenario answered: left alone
    handed = then(started(), "boss")
    assert handed.handed_off and handed.status == "handed_off"
    assert then(handed, "help").rows == ()  # HELP in a handed-off conversation: the advocate's


def test_a_resume_is_stepped_only_when_handed_off_and_always_cleared():
    handed = then(started(), "boss")
    resumed = take_turn(TurnInput(7, "a", "b", MACHINE, handed.state, processed=1,
                                  resume=True), T0, FAST)
    assert resumed.status == "active" and resumed.state.node == "wait"
    assert resumed.commit is not None and resumed.commit.clear_resume
    idle = take_turn(TurnInput(7, "a", "b", MACHINE, resumed.state, processed=1, resume=True),
                     T0, FAST)
    assert idle.taken and idle.steps == () and idle.commit is not None
    assert idle.commit.clear_resume


def test_help_gets_the_help_text_when_nothing_is_said():
    quiet = compile_text("name: q\nversion: 1\nstart: a\nstates:\n  a:\n    expect:\n"
                         "      - otherwise: true\n        goto: a\n")
    turn = take_turn(TurnInput(1, "a", "b", quiet, quiet.new_state(seed=0, context={}),
                               pending={1: Inbound(1, "HELP", (), T0)}), T0, FAST)
    assert bodies(turn) == [("text STOP to stop", "reply")]


def test_operator_messages_are_seen_not_answered():
    turn = take_turn(TurnInput(7, "a", "b", MACHINE, started().state, operator=True,
                               pending={1: Inbound(1, "hello", (), T0)}), T0, FAST)
    assert turn.taken and turn.processed == 1 and turn.rows == () and turn.steps == ()


def test_timers_and_lookup_answers_are_events():
    ended = then(started(), "bye")
    assert ended.status == "ended" and ended.outcome == "finished"
    assert bodies(ended) == [("bye", "reply")]
    state = msgspec.structs.replace(started().state, timer_at=T0 + 60)
    assert not take_turn(TurnInput(7, "a", "b", MACHINE, state), T0 + 59, FAST).taken
    fired = take_turn(TurnInput(7, "a", "b", MACHINE, state), T0 + 60, FAST)
    assert [type(s.event) for s in fired.steps] == [TimerFired]
    answer = LookupResult(kind="x", ok=True)
    looked = take_turn(TurnInput(7, "a", "b", MACHINE, started().state, lookup_result=answer),
                       T0, FAST)
    assert looked.taken and [s.event for s in looked.steps] == [answer]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_the_turn_is_pure_and_the_actor_does_not_reach_into_the_router():
    runtime = Path(__file__).resolve().parent.parent / "intercept" / "runtime"
    turn = (runtime / "turn.py").read_text(encoding="utf-8")
    assert not {"trio", "httpx", "sqlite3", "socket", "os"} & _imports(runtime / "turn.py")
    assert "async def" not in turn and "await " not in turn
    # the actor is handed its services; it imports nothing of the router (no import cycle)
    assert ".router" not in _imports(runtime / "actor.py")
