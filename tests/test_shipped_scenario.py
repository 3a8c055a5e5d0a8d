"""The shipped scenarios: the shape of their graphs and their wording.

Their conversations are tested by the transcript tests in scenarios/tests/ (run by
tests/test_scenario_transcripts.py); this file checks what holds for every conversation.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from intercept.authoring.graph import can_finish, reachable, successors
from intercept.config import load_config
from intercept.engine import (
    ConversationState,
    End,
    Machine,
    Message,
    OptOut,
    Send,
    Start,
    TimerFired,
    load_scenario,
)
from intercept.engine.machine import END, EXPECT, HANDOFF

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
ADULT = load_scenario(SCENARIOS / "buyer-deterrence.yaml")
MINOR = load_scenario(SCENARIOS / "buyer-deterrence-minor.yaml")
OUTREACH = load_scenario(SCENARIOS / "victim-outreach.yaml")
BUYER = [ADULT, MINOR]
ALL = [ADULT, MINOR, OUTREACH]
CONFIG = load_config(ROOT / "config" / "intercept.toml", environ={})
CONTEXT = CONFIG.context_for(CONFIG.numbers[0])
T0 = 1_700_000_000.0
ids = pytest.mark.parametrize("machine", ALL, ids=lambda m: m.name)
buyer_ids = pytest.mark.parametrize("machine", BUYER, ids=lambda m: m.name)


def messages(machine: Machine, language: str | None = None) -> list[tuple[str, str]]:
    """(state or "globals", text) of every message the scenario can send (in `language`
    only, when given)."""
    assert machine.info is not None
    return [(owner, template.source) for loc, owner, template in machine.info.messages
            if language is None or re.search(rf"\.{language}(?:\[|$)", loc.path)]


def test_the_shipped_folder_holds_the_three_scenarios():
    names = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
    assert names == ["buyer-deterrence-minor.yaml", "buyer-deterrence.yaml",
                     "victim-outreach.yaml"]
    assert (ADULT.name, ADULT.version) == ("buyer-deterrence", 3)


@ids
def test_every_shipped_scenario_speaks_english_and_spanish(machine):
    assert machine.languages == ("en", "es")
    spanish = messages(machine, "es")
    assert len(spanish) > 10
    # every message has its Spanish: as many message sites in Spanish as in English
    sites = {language: {re.sub(rf"\.{language}(?:\[.*)?$", "", loc.path)
                        for loc, _, _ in machine.info.messages
                        if re.search(rf"\.{language}(?:\[|$)", loc.path)}
             for language in ("en", "es")}
    assert sites["en"] == sites["es"]
    assert len(sites["es"]) > 5


# ---------------------------------------------------------------------------------------------
# The graph


@ids
def test_every_state_is_reachable_from_the_start(machine):
    assert reachable(machine) == set(machine.nodes)


@ids
def test_every_state_can_end_or_reach_a_person(machine):
    assert can_finish(machine) == set(machine.nodes)


@buyer_ids
def test_every_buyer_conversation_ends_in_a_deterrence(machine):
    ends = {name for name, node in machine.nodes.items() if node.kind == END}
    assert {machine.nodes[name].end for name in ends} == {"deterred"}
    graph = successors(machine)
    for name in machine.nodes:
        if name == "opted_out":
            continue
        seen, todo = {name}, [name]
        while todo:
            for target in (graph[todo.pop()] & set(machine.nodes)) - seen:
                seen.add(target)
                todo.append(target)
        assert seen & ends, f"{name} cannot reach a deterrence"


@buyer_ids
def test_every_waiting_buyer_state_but_the_first_has_a_timeout(machine):
    # The start state is entered by Start, which the buyer's first message follows at once.
    for name, node in machine.nodes.items():
        if node.kind == EXPECT and name not in (machine.start, "opted_out"):
            assert node.timeout is not None, name
            assert node.timeout.after >= 10 * 60, name


@buyer_ids
@pytest.mark.parametrize(("language", "truth"), [("en", "law enforcement"),
                                                 ("es", "autoridades")])
def test_a_silent_buyer_is_deterred_from_every_waiting_state(machine, language, truth):
    for name, node in machine.nodes.items():
        if node.kind != EXPECT or name in (machine.start, "opted_out"):
            continue
        for seed in range(3):
            state = ConversationState(scenario=machine.name, version=machine.version,
                                      node=name, vars={**CONTEXT, "language": language},
                                      rng=seed, turn=1, timer_at=T0,
                                      deadlines={"timeout": T0})
            now, sent = T0, []
            for _ in range(len(machine.nodes)):
                state, effects = machine.step(state, TimerFired(), now)
                sent += [e.text for e in effects if isinstance(e, Send)]
                if state.ended:
                    break
                assert state.timer_at is not None, f"{name}: stuck in {state.node}"
                now = state.timer_at
            assert state.outcome == "deterred", name
            assert truth in " ".join(sent)


def test_outreach_never_nudges_and_hands_interest_to_a_person():
    for name, node in OUTREACH.nodes.items():
        assert node.timeout is None, f"{name} would text again without a reply"
    handoffs = {name: node.priority for name, node in OUTREACH.nodes.items()
                if node.kind == HANDOFF}
    assert handoffs == {"connect": "normal", "urgent": "urgent", "still_urgent": "urgent"}
    assert OUTREACH.expire is not None and OUTREACH.expire.after == 30 * 86400


@ids
def test_stop_is_honoured_from_every_waiting_state(machine):
    for name, node in machine.nodes.items():
        if node.kind != EXPECT or name == "opted_out":
            continue
        state = ConversationState(scenario=machine.name, version=machine.version, node=name,
                                  vars=dict(CONTEXT), turn=1)
        state, effects = machine.step(state, Message("STOP"), T0)
        assert any(isinstance(e, OptOut) for e in effects), name
        assert not [e for e in effects if isinstance(e, Send)], name
        assert state.node == "opted_out"
        # silence afterwards, whatever they send
        for text in ("hello?", "how much", "r u a cop"):
            state, effects = machine.step(state, Message(text), T0 + 1)
            assert not [e for e in effects if isinstance(e, Send | End)], (name, text)


# ---------------------------------------------------------------------------------------------
# The wording


EXPLICIT = {
    "naked", "nude", "nudes", "bj", "blowjob", "oral", "gfe", "pse", "fs", "anal", "bbbj",
    "fuck", "fucking", "dick", "cock", "pussy", "boobs", "tits", "ass", "horny", "sexy",
    "kinky", "cum", "orgasm", "lingerie", "condom", "condoms", "bareback", "happy ending",
    "full service", "69", "strip", "suck", "body", "bed", "kiss", "touch", "wet", "hard",
    "hot", "naughty", "fun", "massage", "session", "special", "extras",
}
EXPLICIT_ES = {
    "desnuda", "desnudo", "desnudas", "encuerada", "mamada", "oral", "anal", "culo", "nalgas",
    "tetas", "chichis", "pechos", "verga", "pito", "panocha", "coger", "cojer", "follar",
    "cachonda", "caliente", "calientes", "rica", "rico", "sabroso", "sabrosa", "sexy", "condon",
    "condones", "masaje", "masajes", "completo", "servicio completo", "final feliz", "beso",
    "besos", "besito", "cama", "cuerpo", "tocar", "mojada", "lenceria", "travieso", "traviesa",
    "divertir", "diversion", "divertirnos", "especial", "extras", "hot", "venirse",
}
EXPLICIT_EMOJI = {"🍆", "🍑", "💦", "👅", "😈", "🔥", "😏", "😉", "💋"}
# Nothing affectionate or flirtatious for the minor persona, and no emoji at all.
FLIRT = {"hun", "hon", "honey", "babe", "baby", "bby", "sweetie", "sweetheart", "cutie", "cute",
         "handsome", "darling", "love", "luv", "xoxo", "miss", "lol", "haha", "hehe", "fun",
         "pretty", "beautiful", "gorgeous"}
FLIRT_ES = {"amor", "mi amor", "amorcito", "bb", "bebe", "carino", "corazon", "guapo", "lindo",
            "papi", "papito", "papacito", "mi rey", "rey", "precioso", "hermoso", "jaja", "jeje",
            "jiji", "besos", "besitos", "mua", "chulo", "nene", "cielo"}
EMOJI = re.compile(r"[\U0001F000-\U0001FFFF\u2600-\u27BF]")


def _bad_words(text: str, words: set[str]) -> set[str]:
    folded = "".join(c for c in unicodedata.normalize("NFD", text.lower())
                     if not unicodedata.combining(c))  # "señuelo" -> "senuelo"
    tokens = re.findall(r"[a-z0-9]+", folded)
    padded = f" {' '.join(tokens)} "
    return {w for w in words if (f" {w} " in padded if " " in w else w in tokens)}


@ids
def test_no_message_is_sexually_explicit(machine):
    found = messages(machine)
    assert len(found) > 10
    for name, text in found:
        bad = (_bad_words(text, EXPLICIT | EXPLICIT_ES)
               | {e for e in EXPLICIT_EMOJI if e in text})
        assert not bad, f"{machine.name}.{name}: {text!r} uses {sorted(bad)}"


def test_the_minor_persona_says_nothing_flirtatious():
    for name, text in messages(MINOR):
        if name.startswith("deter") or name == "globals" or name == "opted_out":
            continue
        bad = _bad_words(text, FLIRT | FLIRT_ES)
        assert not bad, f"{name}: {text!r} uses {sorted(bad)}"
        assert not EMOJI.search(text), f"{name}: {text!r} has an emoji"


def test_the_minor_persona_never_names_a_price():
    for name, text in messages(MINOR):
        words = re.sub(r"\{[^}]*\}", "", text)  # not the placeholders' fallbacks
        assert not re.search(r"\d{2,}|cash|\$|hour|rate|efectivo|d[oó]lares|precio|tarifa|"
                             r"x hora|por hora|cobr", words), f"{name}: {text!r}"


def test_the_explicit_check_would_catch_a_bad_line():
    assert _bad_words("u want to have fun? 😏", EXPLICIT) == {"fun"}
    assert _bad_words("ok hun", FLIRT) == {"hun"}
    assert _bad_words("q rico, ven a mi cama", EXPLICIT_ES) == {"rico", "cama"}
    assert _bad_words("hola amor, jaja", FLIRT_ES) == {"amor", "jaja"}
    assert _bad_words("Cariño", FLIRT_ES) == {"carino"}


def test_buyer_replies_read_like_texts():
    for machine in BUYER:
        for name, text in messages(machine):
            if name.startswith("deter") or name in ("globals", "opted_out"):
                continue
            assert len(text) <= 120, (name, text)
            assert text[:1] == text[:1].lower(), (name, text)


@buyer_ids
def test_the_deterrence_tells_the_truth(machine):
    for name in ("deter_adult", "deter_minor"):
        if name not in machine.nodes:
            continue
        node = machine.nodes[name]
        assert node.end == "deterred"
        text = " ".join(t.source for variant in node.say for t in variant)
        assert "{city.link}" in text and "law enforcement" in text and "decoy" in text
        (spanish, _, _) = node.actions.in_language("es")
        texto = " ".join(t.source for variant in spanish for t in variant)
        assert "{city.link}" in texto and "autoridades" in texto and "señuelo" in texto
        assert "no es un anuncio real" in texto
    minor = " ".join(t.source for v in machine.nodes["deter_minor"].say for t in v)
    assert "minor is a felony" in minor and "sex offender" in minor
    menor = " ".join(t.source for v in machine.nodes["deter_minor"].actions.in_language("es")[0]
                     for t in v)
    assert "menor de edad es un delito grave" in menor and "delincuente sexual" in menor


def test_the_adult_scenario_gives_a_minor_persona_the_minor_deterrence():
    for age, expected in (("16", "deter_minor"), ("23", "deter_adult"), ("", "deter_adult")):
        state = ADULT.new_state(seed=1, context={**CONTEXT, "persona.age": age})
        state, _ = ADULT.step(state, Start(), T0)
        state, _ = ADULT.step(state, Message("hi"), T0 + 1)  # greet
        state, _ = ADULT.step(state, Message("hi"), T0 + 2)  # price
        state, _ = ADULT.step(state, Message("nvm bye"), T0 + 3)  # deter
        assert state.node == expected, age


def test_the_shipped_spanish_number_deters_in_spanish_with_its_citys_spanish_link():
    number = CONFIG.number("+12065550144")
    assert number is not None and number.persona.language == "es"
    context = CONFIG.context_for(number)
    state = ADULT.new_state(seed=1, context=context)
    sent = []
    for i, event in enumerate((Start(), Message("hola"), Message("cuanto"),
                               Message("olvidalo"))):
        state, effects = ADULT.step(state, event, T0 + i)
        sent += [e.text for e in effects if isinstance(e, Send)]
    assert state.node == "deter_adult" and state.vars["language"] == "es"
    assert sent[-3].startswith("Esto no es un anuncio real.")
    assert sent[-1].endswith(context.get("city.link@es", context["city.link"]))


def test_the_minor_scenario_always_uses_the_minor_deterrence():
    state = MINOR.new_state(seed=1, context={**CONTEXT, "persona.age": ""})
    state, _ = MINOR.step(state, Start(), T0)
    state, _ = MINOR.step(state, Message("r u a cop"), T0 + 1)
    state, effects = MINOR.step(state, Message("ok"), T0 + 2)
    assert state.node == "deter_minor"
    assert "felony" in " ".join(e.text for e in effects if isinstance(e, Send))


@ids
@pytest.mark.parametrize(("text", "language"), [
    ("hablas español?", "es"), ("HABLAS ESPANOL", "es"), ("en español porfa", "es"),
    ("Español?", "es"), ("do u speak spanish", "es"), ("spanish?", "es"),
    ("english?", "en"), ("in english please", "en"), ("hablas ingles?", "en"),
    ("i love spanish food", None), ("im english", None), ("hola", None),
])
def test_asking_for_a_language_switches_to_it_in_place(machine, text, language):
    start = "es" if language == "en" else "en"
    state = machine.new_state(seed=1, context={**CONTEXT, "persona.language": start})
    state, _ = machine.step(state, Start(), T0)
    if machine is not OUTREACH:
        state, _ = machine.step(state, Message("ok"), T0 + 1)  # first_contact -> greet
    before = state.node
    state, effects = machine.step(state, Message(text), T0 + 2)
    if language is None:
        assert state.vars["language"] == start
        return
    assert state.vars["language"] == language and state.heard == -1
    assert state.node == before  # answered in place
    sent = [e.text for e in effects if isinstance(e, Send)]
    assert len(sent) == 1 and ("english" in sent[0].lower()) == (language == "en")
