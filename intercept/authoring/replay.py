"""The core of `intercept scenario replay`: a stored conversation's messages, turn by turn.

Each buyer message is one turn of `take_turn`, the function the runtime's actors call, so the
replayed answers are what production would send (the STOP / START / HELP override included);
timers are not replayed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import OptOutConfig
from ..engine import ConversationState, Machine
from ..engine.rng import seed_from
from ..runtime.delays import DelayModel
from ..runtime.turn import Inbound, Turn, TurnInput, TurnRules, take_turn


@dataclass(frozen=True, slots=True)
class Replayed:
    lines: list[str]
    """``bot:   text`` and ``buyer: text`` in order, as the stored transcript is shown."""
    state: ConversationState


def replay(machine: Machine, conversation_id: int, context: dict[str, str],
           messages: Iterable[tuple[str, float]], optout: OptOutConfig) -> Replayed:
    """Run `messages` ((body, received_at), in order) on `machine`, one turn each, from a new
    conversation with the stored one's seed and `context` (persona, city)."""
    rules = TurnRules.of(optout, delays=DelayModel(enabled=False), merge=False)
    messages = list(messages)
    state = machine.new_state(seed=seed_from(f"{conversation_id}"), context=context)
    now = messages[0][1] if messages else 0.0
    opted_out = False
    lines: list[str] = []

    def take(seq: int, pending: dict[int, Inbound], now: float) -> Turn:
        nonlocal state, opted_out
        turn = take_turn(TurnInput(conversation_id=conversation_id, our="", their="",
                                   machine=machine, state=state, processed=seq - 1 if pending
                                   else 0, pending=pending, opted_out=opted_out), now, rules)
        state = turn.state
        if turn.opt_out is not None:
            opted_out = turn.opt_out
        lines.extend(f"bot:   {r.body}" for r in turn.rows if r.kind == "reply")
        return turn

    take(0, {}, now)
    for seq, (body, received_at) in enumerate(messages, start=1):
        lines.append(f"buyer: {body}")
        take(seq, {seq: Inbound(seq, body, (), received_at)}, received_at)
    return Replayed(lines, state)
