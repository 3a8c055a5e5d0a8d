"""Scenarios in more than one language: per-language messages and intents, the conversation's
language (configured, detected from the first texts, set by the author) and per-language
context values."""

from __future__ import annotations

import textwrap

import pytest

from intercept.engine import Message, Send, Start, compile_text
from intercept.errors import ScenarioErrors

SCENARIO = textwrap.dedent("""\
    name: t
    version: 1
    start: first
    languages: [en, es]
    intents:
      price:
        en: [how much, price]
        es: [cuanto, precio, "cuanto x hora"]
      bye: [bye]
      ask_spanish:
        es: [espanol, "en espanol"]
        en: [spanish]
    globals:
      - name: spanish
        intent: ask_spanish
        set: {language: es}
        say: {en: "ok", es: "va, en espanol"}
        return: true
      - name: stop
        regex: '^\\W*stop\\W*$'
        opt_out: {en: "unsubscribed", es: "dado de baja"}
        goto: done
    states:
      first:
        expect:
          - intent: price
            goto: price
          - intent: bye
            goto: done
          - otherwise: true
            goto: greet
      greet:
        say:
          en: ["hey, {persona.name} here"]
          es: ["hola, soy {persona.name}", ["hola", "soy {persona.name}"]]
        expect:
          - intent: price
            goto: price
          - otherwise: true
            stay: true
      price:
        say: {en: "150 an hour", es: "150 la hora"}
        goto: deter
      deter:
        say: {en: "help: {city.link}", es: "ayuda: {city.link}"}
        end: deterred
      done:
        end: gone
    """)

CONTEXT = {"persona.name": "Ana", "city.link": "https://help.example/en",
           "city.link@es": "https://help.example/es"}


def texts(effects) -> list[str]:
    return [e.text for e in effects if isinstance(e, Send)]


def start(machine, **context):
    state = machine.new_state(seed=1, context={**CONTEXT, **context})
    state, _ = machine.step(state, Start(), 0)
    return state


def test_a_spanish_conversation_is_answered_in_spanish_with_the_city_link_in_spanish():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine, **{"persona.language": "es"})
    assert state.vars["language"] == "es"
    state, effects = machine.step(state, Message("cuanto x hora"), 1)
    assert texts(effects) == ["150 la hora", "ayuda: https://help.example/es"]
    assert state.outcome == "deterred"


def test_an_english_conversation_tries_only_english_patterns():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine)
    assert state.vars["language"] == "en"
    state, effects = machine.step(state, Message("cuanto"), 1)
    assert state.node == "greet"  # "cuanto" is not an English price
    assert texts(effects) == ["hey, Ana here"]
    state, effects = machine.step(state, Message("how much"), 2)
    assert texts(effects) == ["150 an hour", "help: https://help.example/en"]


def test_a_spanish_conversation_also_tries_the_default_languages_patterns():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine, **{"persona.language": "es"})
    state, effects = machine.step(state, Message("how much"), 1)
    assert texts(effects)[0] == "150 la hora"


def test_accents_do_not_matter_to_keywords():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine, **{"persona.language": "es"})
    state, effects = machine.step(state, Message("¿Cuánto?"), 1)
    assert texts(effects)[0] == "150 la hora"


def test_the_first_texts_choose_the_language_once():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine)
    # sure enough, two words: switch to Spanish and settle
    state, effects = machine.step(
        state, Message("hola q onda", language="es", confidence=0.95), 1)
    assert state.vars["language"] == "es" and state.heard == -1 and state.sample == ""
    assert texts(effects)[0] in ("hola, soy Ana", "hola")
    # settled: a later English identification changes nothing
    state, effects = machine.step(
        state, Message("ok sounds good", language="en", confidence=0.99), 2)
    assert state.vars["language"] == "es"


def test_an_unsure_or_one_word_text_does_not_decide_and_the_texts_are_joined():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine)
    state, _ = machine.step(state, Message("hola", language="es", confidence=0.99), 1)
    assert state.vars["language"] == "en" and state.heard == 1 and state.sample == "hola"
    assert machine.language_sample(state, "q tal") == "hola\nq tal"
    state, _ = machine.step(state, Message("q tal", language="es", confidence=0.5), 2)
    assert state.vars["language"] == "en" and state.heard == 2
    state, _ = machine.step(state, Message("cuanto", language="es", confidence=0.6), 3)
    # three texts heard without a decision: the language stays and is settled
    assert state.vars["language"] == "en" and state.heard == -1
    assert machine.language_sample(state, "mas") is None


def test_words_that_tell_nothing_do_not_count_towards_a_decision():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine, **{"persona.language": "es"})
    state, _ = machine.step(state, Message("no", language="es", confidence=0.6), 1)
    state, _ = machine.step(state, Message("ok", language="en", confidence=0.76), 2)
    assert state.vars["language"] == "es" and state.heard == 2  # "no ok": nothing telling
    state, _ = machine.step(state, Message("150 lol", language="en", confidence=0.9), 3)
    assert state.vars["language"] == "es" and state.heard == -1


def test_the_measured_threshold_holds_on_the_evaluation_samples():
    """lingua restricted to en/es, at the default confidence with two telling words, on the
    evaluation's samples (loadtest/langid_samples.tsv): every decision it makes is right, and
    it decides most of them (docs/languages.md)."""
    import csv
    from pathlib import Path

    from intercept.engine import ConversationState
    from intercept.engine.machine import LanguageRule
    from intercept.foundation.languages import identify

    machine = compile_text(SCENARIO, file="s.yaml")
    rule = machine.detect
    assert rule == LanguageRule(texts=3, confidence=0.65)
    path = Path(__file__).resolve().parent.parent / "loadtest" / "langid_samples.tsv"
    with path.open(encoding="utf-8") as f:
        samples = [(r["language"], r["text"]) for r in csv.DictReader(f, delimiter="\t")
                   if r["language"] in ("en", "es")]
    decided = right = 0
    for language, text in samples:
        guess, confidence = identify(text, machine.languages)
        state = ConversationState(scenario="t", version=1, node="first", turn=1,
                                  vars={"language": "en"})
        decision, _, _ = machine._hear(state, Message(text, language=guess,
                                                      confidence=confidence))
        if decision is not None:
            decided += 1
            right += decision == language
    assert len(samples) == 135
    assert (right, decided) == (105, 105)  # 78 % decided on one text, none wrong


def test_an_undeclared_language_is_not_taken():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine)
    state, _ = machine.step(state, Message("bom dia amigo", language="pt", confidence=0.99), 1)
    assert state.vars["language"] == "en"


def test_the_author_can_set_the_language_and_it_settles():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine)
    state, _ = machine.step(state, Message("hello there"), 1)
    state, effects = machine.step(state, Message("spanish?"), 2)
    assert state.vars["language"] == "es" and state.heard == -1
    assert texts(effects) == ["va, en espanol"]  # answered in the new language
    state, effects = machine.step(state, Message("cuanto"), 3)
    assert texts(effects)[0] == "150 la hora"


def test_opt_out_confirmation_per_language():
    machine = compile_text(SCENARIO, file="s.yaml")
    state = start(machine, **{"persona.language": "es"})
    state, effects = machine.step(state, Message("STOP"), 1)
    assert [e.confirmation for e in effects if hasattr(e, "confirmation")] == ["dado de baja"]


def test_a_single_language_scenario_keeps_its_state_as_before():
    machine = compile_text(textwrap.dedent("""\
        name: t
        version: 1
        start: a
        states:
          a:
            expect:
              - otherwise: true
                goto: b
          b:
            say: hi
            end: done
        """), file="s.yaml")
    state = machine.new_state(seed=1, context={})
    assert "language" not in state.vars
    state, _ = machine.step(state, Start(), 0)
    state, _ = machine.step(state, Message("hola amigo", language="es", confidence=1.0), 1)
    assert "language" not in state.vars and state.heard == 0


def test_a_message_without_the_default_language_falls_back_to_one_given():
    machine = compile_text(textwrap.dedent("""\
        name: t
        version: 1
        start: a
        languages: [en, es]
        states:
          a:
            expect:
              - otherwise: true
                goto: b
          b:
            say: {es: "hola"}
            end: done
        """), file="s.yaml")
    state = start(machine)
    state, effects = machine.step(state, Message("hi"), 1)
    assert texts(effects) == ["hola"]


@pytest.mark.parametrize(("snippet", "error"), [
    ("languages: []\n", "languages: an empty list"),
    ("languages: [en, en]\n", "languages[1]: 'en' is declared twice"),
    ("languages: [english]\n", "languages[0]: expected 'str' matching regex"),
    ("languages: [en]\n", "states.a.say.es: 'es' is not a declared language"),
])
def test_language_errors_name_the_place(snippet, error):
    text = ("name: t\nversion: 1\nstart: a\n" + snippet
            + "states:\n  a:\n    say: {en: hi, es: hola}\n    end: x\n")
    with pytest.raises(ScenarioErrors) as caught:
        compile_text(text, file="s.yaml")
    assert any(error in str(e) for e in caught.value.errors), caught.value.errors


def test_setting_an_undeclared_language_is_an_error():
    text = ("name: t\nversion: 1\nstart: a\nlanguages: [en, es]\n"
            "states:\n  a:\n    set: {language: fr}\n    end: x\n")
    with pytest.raises(ScenarioErrors) as caught:
        compile_text(text, file="s.yaml")
    assert "states.a.set.language: 'fr' is not a declared language" in str(caught.value)


# -- lint, config, the runtime's part -----------------------------------------------------------


def test_lint_reports_a_message_missing_a_declared_language(tmp_path):
    from intercept.authoring.lint import lint_file

    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.replace('say: {en: "150 an hour", es: "150 la hora"}',
                                     'say: "150 an hour"'))
    found = [f for f in lint_file(path) if f.rule == "language"]
    assert [(f.line, f.path) for f in found] == [(42, "states.price.say")]
    assert "has no es text (declared languages: en, es)" in found[0].message


def test_the_config_gives_the_persona_language_and_the_city_in_other_languages():
    from intercept.config import config_from_dict

    config = config_from_dict({
        "cities": {"sea": {"name": "Seattle", "link": "https://a.example",
                           "deterrence": "Stop.",
                           "languages": {"es": {"link": "https://a.example/es",
                                                "deterrence": "Para."}}}},
        "numbers": [{"number": "+12065550100", "city": "sea", "scenario": "t",
                     "persona": {"name": "Ana", "language": "es"}}]})
    context = config.context_for(config.numbers[0])
    assert context["persona.language"] == "es"
    assert context["city.deterrence"] == "Stop."
    assert context["city.link@es"] == "https://a.example/es"
    assert context["city.deterrence@es"] == "Para."
    assert "city.name@es" not in context
    machine = compile_text(SCENARIO, file="s.yaml")
    state = machine.new_state(seed=1, context=context)
    assert state.vars["language"] == "es"


@pytest.mark.parametrize(("optout", "message"), [
    ({"languages": {"es": {"stop": ["baja", "dos palabras"]}}},
     "optout.languages.es.stop[1]: 'dos palabras' must be one word"),
    ({"languages": {"es": {"stop": ["alto"], "help": ["alto"]}}},
     "optout.languages.es.help[0]: 'alto' already means 'stop'"),
    ({"languages": {"es": {"start": ["stop"]}}},
     "optout.languages.es.start[0]: 'stop' already means 'stop'"),
    ({"languages": {"spanish": {}}}, "optout.languages"),
])
def test_bad_opt_out_words_are_config_errors_naming_the_key(optout, message):
    from intercept.config import config_from_dict
    from intercept.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        config_from_dict({"optout": optout})
    assert message in str(caught.value)


def test_configured_opt_out_words_work_in_every_conversation_and_answer_in_its_language():
    from intercept.config import OptOutConfig, OptOutLanguage
    from intercept.engine import OptOut
    from intercept.runtime.turn import optout_override

    texts = OptOutConfig(languages={"es": OptOutLanguage(
        stop=["baja", "alto"], start=["alta"], help=["ayuda"],
        confirmation="Te dimos de baja.", help_text="Responde ALTO para no recibir mas.")})
    words = texts.words()
    out = optout_override("BAJA por favor", [], False, texts, language="es", words=words)
    assert out == [OptOut("Te dimos de baja.")]
    out = optout_override("Alto", [], False, texts, language="en", words=words)
    assert out == [OptOut(texts.confirmation)]  # an English conversation: the default text
    assert optout_override("STOP", [], False, texts, language="es", words=words) == [
        OptOut("Te dimos de baja.")]  # STOP always works
    assert [e.text for e in optout_override("ayúdame", [], False, texts, language="es",
                                            words=words)] == []  # not the word "ayuda"
    assert [e.text for e in optout_override("ayuda", [], False, texts, language="es",
                                            words=words)] == [
        "Responde ALTO para no recibir mas."]
    assert optout_override("para cuando?", [], False, texts, words=words) == []


def first_turn(text: str):
    """The turn a conversation of SCENARIO takes on its first text (real identification)."""
    from intercept.runtime.delays import DelayModel
    from intercept.runtime.turn import Inbound, TurnInput, TurnRules, take_turn

    machine = compile_text(SCENARIO, file="s.yaml")
    state = machine.new_state(seed=1, context=CONTEXT)
    rules = TurnRules(delays=DelayModel(enabled=False), merge=False)
    return take_turn(TurnInput(
        conversation_id=1, our="+12065550100", their="+12065550199", machine=machine,
        state=state, pending={1: Inbound(1, text)}), 10.0, rules)


def test_a_turn_identifies_the_language_of_the_first_texts():
    turn = first_turn("hola amor, cuanto cobras por una hora?")
    assert turn.state.vars["language"] == "es"
    assert [row.body for row in turn.rows] == ["150 la hora", "ayuda: https://help.example/es"]


def test_an_english_first_text_keeps_english():
    turn = first_turn("hey are you available tonight? how much")
    assert turn.state.vars["language"] == "en" and turn.state.heard == -1
    assert turn.rows[0].body == "150 an hour"


def test_identify_is_restricted_to_the_declared_languages():
    from intercept.foundation.languages import identify

    assert identify("hola q onda, dnd estas?", ("en", "es"))[0] == "es"
    assert identify("hey whats up, where are you?", ("en", "es"))[0] == "en"
    assert identify("anything", ("en",)) == ("", 0.0)
    assert identify("anything", ("en", "xx")) == ("", 0.0)


# -- through the server: the simulator gateway, the store, the API and the console -------------


async def test_a_spanish_buyer_is_answered_in_spanish_and_the_console_says_so(tmp_path):
    from intercept.scenarios import ScenarioRegistry

    from helpers import TOKEN, login, serving

    reg = ScenarioRegistry([compile_text(SCENARIO, file="s.yaml")])
    async with serving(tmp_path, reg=reg, scenario="t") as live:
        cid = await live.text("hola amor, cuanto cobras por una hora?")
        bodies = [b for (b,) in live.query(
            "SELECT body FROM outbox WHERE conversation_id = ? ORDER BY position", (cid,))]
        # the test config's Seattle has no Spanish link: the city's own
        assert bodies == ["150 la hora", "ayuda: https://help.example/sea"]
        english = await live.text("hey how much for an hour?", their="+12065550177")
        bodies = [b for (b,) in live.query(
            "SELECT body FROM outbox WHERE conversation_id = ? ORDER BY position", (english,))]
        assert bodies == ["150 an hour", "help: https://help.example/sea"]
        await login(live.client, "advocate")
        page = await live.client.get(f"/conversations/{cid}")
        assert "<dt>Language</dt><dd>Spanish (es)</dd>" in page.text
        r = await live.client.get(f"/api/conversations/{cid}",
                                  headers={"authorization": "Bearer " + TOKEN["advocate"]})
        assert r.status_code == 200 and r.json()["conversation"]["language"] == "es"


@pytest.mark.parametrize(("text", "language", "answer"), [
    ("si claro", "es", "yes"), ("simon", "es", "yes"), ("nel", "es", "no"),
    ("no gracias", "es", "no"), ("quien eres? no entiendo", "es", ""),
    ("no se", "es", ""), ("si", "en", ""), ("yes", "en", "yes"), ("ok", "es", "yes"),
])
def test_yes_and_no_are_read_in_the_conversations_language(text, language, answer):
    from intercept.engine.text import Text

    assert Text(text, language=language).answer == answer


def test_answer_entries_read_spanish_in_a_spanish_conversation():
    machine = compile_text(textwrap.dedent("""\
        name: t
        version: 1
        start: a
        languages: [es, en]
        states:
          a:
            expect:
              - answer: "yes"
                goto: yes
              - otherwise: true
                goto: other
          yes:
            end: yes
          other:
            end: other
        """), file="s.yaml")
    state = machine.new_state(seed=1, context={})
    state, _ = machine.step(state, Start(), 0)
    done, _ = machine.step(state, Message("simon"), 1)
    assert done.outcome == "yes"  # Spanish is this scenario's default language


async def test_the_shipped_server_answers_a_spanish_only_buyer_in_spanish_to_the_deterrence(
        tmp_path):
    """The issue's acceptance, through the shipped config and scenarios, the simulator gateway,
    the store and the sender: a buyer who writes only Spanish to an English persona."""
    import tomllib
    from pathlib import Path

    from intercept.config import config_from_dict

    from helpers import running, shipped

    root = Path(__file__).resolve().parent.parent
    raw = tomllib.loads((root / "config" / "intercept.toml").read_text())
    for section, values in {"http": {"enabled": False}, "delays": {"enabled": False},
                            "health": {"interval": "1h"}, "handoffs": {"interval": "1h"}
                            }.items():
        raw.setdefault(section, {}).update(values)
    config = config_from_dict(raw, environ={})
    ours, theirs = "+12065550100", "+12065550188"  # Jasmine, Seattle: an English persona
    assert config.number(ours).persona.language == ""
    async with running(tmp_path, config, reg=shipped()) as (server, _):
        async def text(body: str = "", media: tuple[str, ...] = ()) -> list[str]:
            done = await server.gateway.inject(their_number=theirs, our_number=ours,
                                               text=body, media=media)
            await server.settled(done.conversation_id, done.conv_seq)
            return [b for (b,) in server.store.query(
                "SELECT body FROM outbox WHERE conversation_id = ? ORDER BY position",
                (done.conversation_id,))]

        await text("hola amor q onda")
        await text("cuanto x hora?")
        await text("a las 9 de la noche")
        await text("voy a tu casa")
        sent = await text("", ("https://mms.example/es/1.jpg",))
        assert sent[-3].startswith("Esto no es un anuncio real.") and "Seattle" in sent[-3]
        assert sent[-1] == ("Si quiere dejar de hacerlo, hay ayuda confidencial en "
                            "https://www.seattleops.org")
        english = ("This is not a real ad", "for the hour", "u looking to meet", "who's this")
        assert not any(e in s for s in sent for e in english), sent
        ((outcome, language),) = server.store.query(
            "SELECT outcome, json_extract(state, '$.vars.language') FROM conversations "
            "WHERE their_number = ?", (theirs,))
        assert (outcome, language) == ("deterred", "es")
