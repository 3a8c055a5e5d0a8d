"""The shipped buyer-deterrence scenario: scripted buyers, the shape of its graph, its wording.

Each transcript is replayed with many seeds, so every say variant gets exercised and no test
depends on which variant was picked.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

import pytest

from intercept.config import load_config
from intercept.engine import (
    ConversationState,
    End,
    Machine,
    Message,
    Send,
    Start,
    TimerFired,
    load_scenario,
)

ROOT = Path(__file__).resolve().parent.parent
MACHINE = load_scenario(ROOT / "scenarios" / "buyer-deterrence.yaml")
CONFIG = load_config(ROOT / "config" / "intercept.toml", environ={})
T0 = 1_700_000_000.0
SEEDS = range(12)

SILENCE = object()  # the buyer does not answer: the state's timer fires
PHOTO = object()  # the buyer sends a photo without any text


class Run:
    """One conversation driven through the compiled machine."""

    def __init__(self, seed: int, number_index: int = 0):
        number = CONFIG.numbers[number_index]
        self.city = CONFIG.cities[number.city]
        self.persona = number.persona
        self.now = T0
        self.state = MACHINE.new_state(seed=seed, context=CONFIG.context_for(number))
        self.sent: list[str] = []
        self.path: list[str] = []
        self.outcomes: list[str] = []
        self._apply(Start())

    def _apply(self, event) -> None:
        self.state, effects = MACHINE.step(self.state, event, self.now)
        self.sent.extend(e.text for e in effects if isinstance(e, Send))
        self.outcomes.extend(e.outcome for e in effects if isinstance(e, End))
        self.path.append(self.state.node)

    def buyer(self, *lines) -> Run:
        for line in lines:
            assert not self.state.ended, f"ended before {line!r}"
            if line is SILENCE:
                assert self.state.timer_at is not None, f"no timer in {self.state.node}"
                self.now = self.state.timer_at
                self._apply(TimerFired())
            elif line is PHOTO:
                self.now += 90
                self._apply(Message("", media=("https://mms.example/p/1.jpg",)))
            else:
                self.now += 45
                self._apply(Message(line))
        return self

    def assert_deterred(self) -> None:
        assert self.state.outcome == "deterred"
        assert self.outcomes == ["deterred"]
        assert self.state.node == "deter"
        last = " ".join(self.sent[-3:])
        assert self.city.link in last
        assert "law enforcement" in last
        assert f"in {self.city.name}" in last
        for text in self.sent:
            assert "{" not in text and "}" not in text, text


def play(lines, *, seed: int, number_index: int = 0) -> Run:
    return Run(seed, number_index).buyer(*lines)


# ---------------------------------------------------------------------------------------------
# Scripted buyers


TRANSCRIPTS = {
    "polite": (
        ["hi is this Jasmine?", "yes. my name is dave", "ok sounds good", "8pm",
         "i'll come to u", PHOTO],
        ["first_contact", "greet", "price", "time", "place", "photo", "deter"],
    ),
    "haggler": (
        ["how much for an hour", "thats too much, can u do 100?", "fine. tonight at 9?",
         "my hotel downtown", "ok one sec", PHOTO],
        ["first_contact", "price", "haggle", "place", "photo", "photo_wait", "deter"],
    ),
    "names the time in the price step": (
        ["hey", "how much", "ok 8pm?", "your place", "here u go"],
        ["first_contact", "greet", "price", "place", "photo", "deter"],
    ),
    "asks if she is free tonight": (
        ["hey", "u available tonight?", "ok cool", "urs", PHOTO],
        ["first_contact", "greet", "price_timed", "place", "photo", "deter"],
    ),
    "cop question first": (
        ["r u a cop?", PHOTO],
        ["first_contact", "cop_check", "deter"],
    ),
    "cop question at the price": (
        ["hey", "$$?", "are you police", "u sure?", "ok"],
        ["first_contact", "greet", "price", "cop_check", "cop_again", "deter"],
    ),
    "cop question at the photo": (
        ["hey", "u available tonight", "ok", "you come to me", "is this a sting",
         "no way im sending a pic", "nope"],
        ["first_contact", "greet", "price_timed", "place", "photo", "cop_check", "photo_push",
         "deter"],
    ),
    "refuses the photo": (
        ["hi", "how much", "ok", "10pm", "outcall", "why do u need a pic", "not happening"],
        ["first_contact", "greet", "price", "time", "place", "photo", "photo_push", "deter"],
    ),
    "says no to the photo, then gives in": (
        ["hi", "how much", "k", "in an hour", "ok", "No.", "fine hold on", PHOTO],
        ["first_contact", "greet", "price", "time", "place", "photo", "photo_push",
         "photo_wait", "deter"],
    ),
    "the `intercept chat --help` example": (
        ["hey", "how much", "8pm", "my place", "ok"],
        ["first_contact", "greet", "price", "place", "photo", "deter"],
    ),
    "the README example": (
        ["hey", "how much", "9pm", "my place", "r u a cop?", "ok"],
        ["first_contact", "greet", "price", "place", "photo", "cop_check", "deter"],
    ),
    "asks for her photos first": (
        ["send pics", PHOTO, "tmrw at noon", "my place", PHOTO],
        ["first_contact", "photo_first", "price", "place", "photo", "deter"],
    ),
    "asks for photos at the price": (
        ["how much", "can i see more pics", "at 7", "ur spot", PHOTO],
        ["first_contact", "price", "pic_tease", "place", "photo", "deter"],
    ),
    "walks away at the price": (
        ["hey", "how much", "nvm too rich for me"],
        ["first_contact", "greet", "price", "deter"],
    ),
    "silent after hello": (
        ["hey", SILENCE, SILENCE],
        ["first_contact", "greet", "nudge_greet", "deter"],
    ),
    "comes back after a nudge": (
        ["hey", SILENCE, "sorry was driving. u free now?", "ok", SILENCE, SILENCE, SILENCE],
        ["first_contact", "greet", "nudge_greet", "price_timed", "place", "photo",
         "photo_nudge", "deter"],
    ),
    "silent at the price": (
        ["how much", SILENCE, SILENCE],
        ["first_contact", "price", "nudge_price", "deter"],
    ),
    "silent at the time": (
        ["how much", "ok", SILENCE, SILENCE],
        ["first_contact", "price", "time", "nudge_time", "deter"],
    ),
    "silent at the photo": (
        ["how much", "8pm", SILENCE, SILENCE, SILENCE],
        ["first_contact", "price", "place", "photo", "photo_nudge", "deter"],
    ),
    "sends only photos": (
        [PHOTO] * 6,
        ["first_contact", "greet", "price", "time", "place", "photo", "deter"],
    ),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_scripted_buyer_is_deterred(name, seed):
    lines, expected_path = TRANSCRIPTS[name]
    run = play(lines, seed=seed)
    run.assert_deterred()
    assert run.path == expected_path


@pytest.mark.parametrize("index", range(3))
def test_each_city_gets_its_own_link_and_persona(index):
    run = play(["hey", "how much", "8pm", "ok", PHOTO], seed=index, number_index=index)
    run.assert_deterred()
    city = run.city
    assert sum(city.link in text for text in run.sent) == 1
    greeting = " ".join(run.sent[:2])
    assert run.persona.name in greeting


def test_the_price_step_skips_the_time_question_when_he_names_a_time():
    run = play(["how much", "ok see u at 9pm"], seed=0)
    assert run.path == ["first_contact", "price", "place"]
    assert run.state.vars["when"] == "9pm"
    assert "9pm" in run.sent[-1] or "9pm" in run.sent[-2]


def test_his_name_and_the_time_are_remembered():
    run = play(["hello", "this is Mike", "8:30"], seed=4)
    assert run.state.vars["his_name"] == "mike"
    assert run.state.vars["when"] == "8:30"


def test_the_meeting_place_is_recorded():
    assert play(["how much", "8pm", "my hotel"], seed=0).state.vars["meet"] == "his place"
    assert play(["how much", "8pm", "ur place"], seed=0).state.vars["meet"] == "her place"


def test_greet_sends_a_price_question_to_price():
    for text in ["how much?", "whats ur rate", "$?", "hw much for 1 hr"]:
        assert play(["hi", text], seed=1).path[-1] == "price", text


def test_a_silent_buyer_is_deterred_from_every_waiting_state():
    for name, node in MACHINE.nodes.items():
        if not node.expect or name == MACHINE.start:
            continue
        for seed in range(3):
            state = ConversationState(scenario=MACHINE.name, version=MACHINE.version,
                                      node=name, vars=CONFIG.context_for(CONFIG.numbers[0]),
                                      rng=seed, turn=1, timer_at=T0)
            now, sent = T0, []
            for _ in range(len(MACHINE.nodes)):
                state, effects = MACHINE.step(state, TimerFired(), now)
                sent += [e.text for e in effects if isinstance(e, Send)]
                if state.ended:
                    break
                assert state.timer_at is not None, f"{name}: stuck in {state.node}"
                now = state.timer_at
            assert state.outcome == "deterred", name
            assert "law enforcement" in " ".join(sent)


# ---------------------------------------------------------------------------------------------
# The graph


def edges(machine: Machine) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, node in machine.nodes.items():
        targets = {m.goto for m in node.expect}
        if node.timeout:
            targets.add(node.timeout[1])
        if node.goto:
            targets.add(node.goto)
        out[name] = targets
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, queue = {start}, deque([start])
    while queue:
        for target in graph[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def test_every_state_is_reachable_from_the_start():
    graph = edges(MACHINE)
    assert reachable(graph, MACHINE.start) == set(MACHINE.nodes)


def test_every_state_can_reach_an_end():
    graph = edges(MACHINE)
    ends = {name for name, node in MACHINE.nodes.items() if node.end is not None}
    assert ends == {"deter"}
    for name in MACHINE.nodes:
        assert reachable(graph, name) & ends, f"{name} cannot reach an end"


def test_the_graph_has_no_cycles_so_every_conversation_ends():
    graph = edges(MACHINE)
    visiting, done = set(), set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in visiting, f"cycle: {' -> '.join((*trail, name))}"
        if name in done:
            return
        visiting.add(name)
        for target in graph[name]:
            visit(target, (*trail, name))
        visiting.discard(name)
        done.add(name)

    visit(MACHINE.start, ())
    assert done == set(MACHINE.nodes)


def test_every_waiting_state_but_the_first_has_a_timeout():
    # The start state is entered by Start, which the buyer's first message follows at once.
    for name, node in MACHINE.nodes.items():
        if node.expect and name != MACHINE.start:
            assert node.timeout is not None, name
            assert node.timeout[0] >= 10 * 60, name


def test_every_reply_state_has_varied_wording():
    for name, node in MACHINE.nodes.items():
        if node.say and node.end is None:
            assert len(node.say) >= 2, f"{name} has a single way of saying it"


def test_the_end_state_tells_the_truth():
    deter = MACHINE.nodes["deter"]
    assert deter.end == "deterred"
    text = " ".join(t.source for variant in deter.say for t in variant)
    assert "{city.link}" in text and "law enforcement" in text and "decoy" in text


# ---------------------------------------------------------------------------------------------
# The wording


EXPLICIT = {
    "naked", "nude", "nudes", "bj", "blowjob", "oral", "gfe", "pse", "fs", "anal", "bbbj",
    "fuck", "fucking", "dick", "cock", "pussy", "boobs", "tits", "ass", "horny", "sexy",
    "kinky", "cum", "orgasm", "lingerie", "condom", "condoms", "bareback", "happy ending",
    "full service", "69", "strip", "suck", "body", "bed", "kiss", "touch", "wet", "hard",
    "hot", "naughty", "fun", "massage", "session", "special", "extras",
}
EXPLICIT_EMOJI = {"🍆", "🍑", "💦", "👅", "😈", "🔥", "😏", "😉", "💋"}


def all_messages(machine: Machine) -> list[tuple[str, str]]:
    return [(name, template.source) for name, node in machine.nodes.items()
            for variant in node.say for template in variant]


def test_no_message_is_sexually_explicit():
    messages = all_messages(MACHINE)
    assert len(messages) > 40
    for name, text in messages:
        words = set(re.findall(r"[a-z0-9]+", text.lower()))
        padded = f" {' '.join(re.findall(r'[a-z0-9]+', text.lower()))} "
        bad = {w for w in EXPLICIT if (f" {w} " in padded if " " in w else w in words)}
        bad |= {e for e in EXPLICIT_EMOJI if e in text}
        assert not bad, f"{name}: {text!r} uses {sorted(bad)}"


def test_the_explicit_check_would_catch_a_bad_line():
    words = set(re.findall(r"[a-z0-9]+", "u want to have fun? 😏".lower()))
    assert words & EXPLICIT


def test_replies_read_like_texts():
    # lower case, short, and every persona line below SMS-ish length
    for name, text in all_messages(MACHINE):
        if name == "deter":
            continue
        assert len(text) <= 120, (name, text)
        assert text[:1] == text[:1].lower(), (name, text)
