"""The conversation state machine: `Machine.step(state, event, now) -> (state, effects)`.

Pure and synchronous: no I/O, no clock, no global randomness. `now` is passed in (Unix seconds)
and random choices come from the SplitMix64 counter kept in the state, so the same state and event
always give the same result. A `Machine` is built from a scenario by `compiler.compile_scenario`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..errors import EngineError
from . import rng
from .events import (
    CancelTimer,
    Capture,
    ConversationState,
    Effect,
    End,
    Event,
    Message,
    Send,
    SetTimer,
    Start,
    TimerFired,
)
from .template import Template

# ---------------------------------------------------------------------------------------------
# The compiled table


def normalise(text: str) -> str:
    """Lower-case, Unicode-compatibility-folded text for matching."""
    return unicodedata.normalize("NFKC", text).casefold()


_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One compiled `expect` entry."""

    goto: str
    words: frozenset[str] = frozenset()
    phrases: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None
    otherwise: bool = False
    assign: tuple[tuple[str, Template], ...] = ()

    def match(self, folded: str, words: frozenset[str]) -> dict[str, str] | None:
        """Captured values if this entry matches (empty dict for a plain match), else None."""
        if self.otherwise:
            return {}
        if self.regex is not None:
            found = self.regex.search(folded)
            if found is None:
                return None
            return {k: v for k, v in found.groupdict().items() if v is not None}
        if self.words & words:
            return {}
        for symbol in self.symbols:
            if symbol in folded:
                return {}
        if not self.phrases:
            return None
        padded = f" {' '.join(_WORD.findall(folded))} "
        for phrase in self.phrases:
            if phrase in padded:
                return {}
        return None


@dataclass(frozen=True, slots=True)
class Node:
    """One compiled state."""

    name: str
    say: tuple[tuple[Template, ...], ...] = ()  # variants, each one or more messages
    expect: tuple[Matcher, ...] = ()
    timeout: tuple[float, str] | None = None
    goto: str | None = None
    end: str | None = None
    assign: tuple[tuple[str, Template], ...] = ()


_MAX_HOPS = 100  # the compiler refuses goto cycles; this only guards against a compiler bug


class Machine:
    """A compiled scenario. Immutable and shared by every conversation that runs it."""

    def __init__(self, name: str, version: int, start: str, nodes: dict[str, Node]):
        self.name = name
        self.version = version
        self.start = start
        self.nodes = nodes

    def __repr__(self) -> str:
        return f"<Machine {self.name} v{self.version}: {len(self.nodes)} states>"

    def new_state(self, *, seed: int, context: dict[str, str]) -> ConversationState:
        """A conversation that has not started. `context` holds persona.* and city.* values."""
        return ConversationState(scenario=self.name, version=self.version, vars=dict(context),
                                 rng=seed)

    def step(self, state: ConversationState, event: Event, now: float
             ) -> tuple[ConversationState, list[Effect]]:
        """Apply one event. Raises `EngineError` (and changes nothing) for an impossible one."""
        if state.scenario != self.name or state.version != self.version:
            raise EngineError(f"state belongs to scenario {state.scenario!r} v{state.version}, "
                              f"not {self.name!r} v{self.version}")
        if isinstance(event, Start):
            if state.started:
                raise EngineError("the conversation has already started")
            return self._enter(state, self.start, {}, now, [])
        if not state.started:
            raise EngineError(f"{type(event).__name__} before the conversation started")
        if state.ended:
            return state, []
        node = self.nodes.get(state.node)
        if node is None:
            raise EngineError(f"state {state.node!r} does not exist in {self.name!r} "
                              f"v{self.version}")
        if isinstance(event, TimerFired):
            if state.timer_at is None or now < state.timer_at or node.timeout is None:
                return state, []
            return self._enter(state, node.timeout[1], {}, now, [])
        if isinstance(event, Message):
            if not node.expect:
                return state, []
            folded = normalise(event.text)
            words = frozenset(_WORD.findall(folded))
            for matcher in node.expect:
                captured = matcher.match(folded, words)
                if captured is not None:
                    updates = {"message": event.text, **captured}
                    effects: list[Effect] = [Capture(k, v) for k, v in captured.items()]
                    if matcher.assign:
                        values = {**state.vars, **updates}
                        for key, template in matcher.assign:
                            updates[key] = values[key] = template.render(values)
                    return self._enter(state, matcher.goto, updates, now, effects)
            raise EngineError(f"no reply matched in state {node.name!r}")  # compiler forbids
        raise EngineError(f"unknown event {event!r}")

    def _enter(self, state: ConversationState, target: str, updates: dict[str, str],
               now: float, effects: list[Effect]) -> tuple[ConversationState, list[Effect]]:
        values = {**state.vars, **updates}
        seed = state.rng
        for _ in range(_MAX_HOPS):
            node = self.nodes[target]
            for key, template in node.assign:
                values[key] = template.render(values)
            if node.say:
                index, seed = rng.choose(seed, len(node.say)) if len(node.say) > 1 else (0, seed)
                effects.extend(Send(t.render(values)) for t in node.say[index])
            if node.end is not None:
                if state.timer_at is not None:
                    effects.append(CancelTimer())
                effects.append(End(node.end))
                return ConversationState(
                    scenario=state.scenario, version=state.version, node=target, vars=values,
                    rng=seed, turn=state.turn + 1, timer_at=None, outcome=node.end), effects
            if node.goto is not None:
                target = node.goto
                continue
            timer_at = None
            if node.timeout is not None:
                timer_at = now + node.timeout[0]
                effects.append(SetTimer(timer_at))
            elif state.timer_at is not None:
                effects.append(CancelTimer())
            return ConversationState(
                scenario=state.scenario, version=state.version, node=target, vars=values,
                rng=seed, turn=state.turn + 1, timer_at=timer_at), effects
        raise EngineError(f"more than {_MAX_HOPS} goto hops without waiting from {target!r}")
