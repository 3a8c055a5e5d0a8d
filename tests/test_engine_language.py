"""The scenario language, construct by construct, on the pure engine (no trio, no store).

Matching (words, phrases, regex, numbers, yes/no, media/phone/url, fuzzy, intents, text
normalisation), global handlers, includes, conditions, random splits, visit limits, deadlines
(timeouts and expiry), merge windows, delays and busy pauses, lookups, hand-off and resume,
opt-out and opt-in, transitions, and the compiler's errors for each.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from intercept.engine import (
    CancelTimer,
    Capture,
    ConversationState,
    End,
    HandOff,
    Lookup,
    LookupResult,
    Machine,
    Message,
    OptIn,
    OptOut,
    Resume,
    Send,
    SetTimer,
    Start,
    Tag,
    TimerFired,
    Transition,
    compile_text,
    load_scenario,
)
from intercept.engine.machine import VisitLimit
from intercept.engine.text import Text, fold, parse_numbers
from intercept.errors import EngineError, ScenarioError, ScenarioErrors

CONTEXT = {"persona.name": "Jasmine", "persona.age": "23", "persona.style": "casual",
           "city.name": "Seattle", "city.link": "https://help.example/sea", "city.region": "US"}
T0 = 1_700_000_000.0


def build(states: str, head: str = "", *, start: str = "a", file: str = "t.yaml") -> Machine:
    """Compile `head` (top-level sections) and `states`."""
    text = (f"name: t\nversion: 1\nstart: {start}\n" + textwrap.dedent(head).strip("\n")
            + "\nstates:\n" + textwrap.indent(textwrap.dedent(states).strip("\n") + "\n", "  "))
    return compile_text(text, file=file)


def errors_of(states: str, head: str = "") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        build(states, head, file="s.yaml")
    exc = info.value
    return [e.render() for e in (exc.errors if isinstance(exc, ScenarioErrors) else [exc])]


def begin(m: Machine, *, seed: int = 0, context: dict[str, str] | None = None, now: float = T0):
    return m.step(m.new_state(seed=seed, context=dict(CONTEXT if context is None else context)),
                  Start(), now)


def say(m: Machine, state: ConversationState, text: str, now: float = T0 + 1, **kwargs):
    return m.step(state, Message(text, **kwargs), now)


def sent(effects) -> list[str]:
    return [e.text for e in effects if isinstance(e, Send)]


def of(kind, effects) -> list:
    return [e for e in effects if isinstance(e, kind)]


# One waiting state `a` routing to end states named after the matcher; `other` otherwise.
def router(*entries: str, head: str = "") -> Machine:
    targets = []
    lines = []
    for entry in entries:
        target = entry.split("->")[1].strip()
        lines.append(f"    - {entry.split('->')[0].strip()}\n      goto: {target}")
        targets.append(target)
    body = "a:\n  expect:\n" + "\n".join(lines) + "\n    - otherwise: true\n      goto: other\n"
    for target in dict.fromkeys([*targets, "other"]):
        body += f"{target}:\n  end: {target}\n"
    return build(body, head)


def route(m: Machine, text: str, **kwargs) -> str:
    state, _ = begin(m)
    state, _ = say(m, state, text, **kwargs)
    return state.node


# ---------------------------------------------------------------------------------------------
# Reading a reply


@pytest.mark.parametrize(("raw", "folded"), [
    ("HELLO", "hello"), ("ＰＲＩＣＥ", "price"), ("Straße", "strasse"), ("don't", "dont"),
    ("it’s", "its"), ("ﬁne", "fine"),
])
def test_fold(raw, folded):
    assert fold(raw) == folded


def test_repeated_letters_and_emoji_are_read_as_words():
    text = Text("Heyyyy 👍 sooo")
    assert {"heyyyy", "heyy", "hey", "ok", "sooo", "soo", "so"} <= text.words
    assert "1000" in Text("1000").words and "100" not in Text("1000").words  # digits stay


@pytest.mark.parametrize(("text", "numbers"), [
    ("$200", [200]), ("2 hundred", [200]), ("200 roses", [200]), ("two hundred", [200]),
    ("two hundred fifty", [250]), ("one fifty", [150]), ("a hundred and fifty", [150]),
    ("$1,500", [1500]), ("1.5k", [1500]), ("200/hr", [200]), ("can u do 100 or 120", [100, 120]),
    ("8pm", []), ("at 8:30", []), ("call 206-555-0100", []), ("im 23", [23]), ("ok", []),
])
def test_numbers(text, numbers):
    assert parse_numbers(fold(text)) == numbers


@pytest.mark.parametrize(("text", "answer"), [
    ("yes", "yes"), ("Yeah sure", "yes"), ("ok", "yes"), ("👍", "yes"), ("yesss", "yes"),
    ("no", "no"), ("nope", "no"), ("no thanks", "no"), ("not interested", "no"), ("nah", "no"),
    ("no problem", "yes"), ("why not", "yes"), ("maybe", ""), ("yes and no", ""),
    ("i dont know", ""), ("", ""),
])
def test_yes_no(text, answer):
    assert Text(text).answer == answer


# ---------------------------------------------------------------------------------------------
# Matchers


def test_keywords_all_and_phrase():
    m = router("all: [price, hour] -> both", "phrase: how much -> phrase",
               "keywords: [rate, $] -> any")
    assert route(m, "price per HOUR?") == "both"
    assert route(m, "hour price") == "both"
    assert route(m, "price?") == "other"
    assert route(m, "HOW...much") == "phrase"
    assert route(m, "how is it much") == "other"
    assert route(m, "ur rate") == "any" and route(m, "$150") == "any"


def test_keywords_see_through_repeated_letters_and_apostrophes():
    m = router("keywords: [hey] -> hey", "keywords: [won't] -> wont", "phrase: so good -> good")
    assert route(m, "heyyyyy") == "hey"
    assert route(m, "wont") == "wont" and route(m, "WON’T") == "wont"
    assert route(m, "sooooo goooood") == "good"


def test_regex_captures_keep_the_case_as_written():
    m = build("""
        a:
          expect:
            - regex: 'my name is (?P<name>\\w+)'
              capture: said
              goto: b
            - otherwise: true
              goto: b
        b:
          say: "hi {name}"
          end: done
        """)
    state, _ = begin(m)
    state, effects = say(m, state, "MY NAME IS Dave")
    assert sent(effects) == ["hi Dave"]
    assert of(Capture, effects) == [Capture("name", "Dave"), Capture("said", "MY NAME IS Dave")]
    assert state.vars["message"] == "MY NAME IS Dave"


def test_number_ranges_and_captures():
    m = build("""
        a:
          expect:
            - number: {min: 100, max: 300, capture: price}
              goto: ok
            - number: true
              goto: any
            - otherwise: true
              goto: other
        ok:
          say: "{price} it is"
          end: ok
        any:
          end: any
        other:
          end: other
        """)
    for text, node in [("$200", "ok"), ("2 hundred", "ok"), ("two hundred", "ok"),
                       ("200 roses", "ok"), ("50 or 150?", "ok"), ("$50", "any"),
                       ("1k", "any"), ("8pm", "other"), ("none", "other")]:
        assert route(m, text) == node, text
    state, _ = begin(m)
    _, effects = say(m, state, "can u do one fifty")
    assert sent(effects) == ["150 it is"] and of(Capture, effects) == [Capture("price", "150")]


def test_answer_yes_no():
    m = router("answer: yes -> yes", "answer: no -> no")
    assert [route(m, t) for t in ("yeah", "Nope!", "maybe", "ok 👍", "no thanks")] == [
        "yes", "no", "other", "yes", "no"]


def test_has_media_phone_url_with_captures():
    m = build("""
        a:
          expect:
            - has: media
              capture: photo
              goto: b
            - has: phone
              capture: phone
              goto: b
            - has: url
              capture: link
              goto: b
            - otherwise: true
              goto: b
        b:
          end: done
        """)
    state, _ = begin(m)
    new, _ = say(m, state, "", media=("https://m/1.jpg", "https://m/2.jpg"))
    assert new.vars["photo"] == "https://m/1.jpg https://m/2.jpg"
    assert say(m, state, "call me at (206) 555-0100 ok")[0].vars["phone"] == "(206) 555-0100"
    assert say(m, state, "text +44 7700 900123")[0].vars["phone"] == "+44 7700 900123"
    assert say(m, state, "see www.example.com/me")[0].vars["link"] == "www.example.com/me"
    assert say(m, state, "see https://x.io/a?b=1")[0].vars["link"] == "https://x.io/a?b=1"
    assert "phone" not in say(m, state, "150 at 8pm")[0].vars


def test_fuzzy_takes_text_speak_and_typos_but_not_short_word_lookalikes():
    m = router("fuzzy: [how much, pictures, are you a cop, available] -> hit")
    for text in ["hw much", "HOW MUCH", "how muuuch", "pix?", "send pic", "r u a cop",
                 "are u a cop", "avail tonite?", "availble", "pictures"]:
        assert route(m, text) == "hit", text
    for text in ["how", "who much", "pizza", "are you a cow", "cap", "label"]:
        assert route(m, text) == "other", text


def test_if_guards_an_entry():
    m = build("""
        a:
          expect:
            - keywords: [hi]
              if: {var: persona.age, lt: 18}
              goto: minor
            - keywords: [hi]
              goto: adult
            - otherwise: true
              goto: adult
        minor:
          end: minor
        adult:
          end: adult
        """)
    assert route(m, "hi") == "adult"
    state, _ = begin(m, context={**CONTEXT, "persona.age": "16"})
    assert say(m, state, "hi")[0].node == "minor"


# ---------------------------------------------------------------------------------------------
# Intents


INTENTS = """
intents:
  price:
    - price
    - how much
    - fuzzy: [donation]
  money:
    - intent: price
    - number: {min: 50, capture: amount}
"""


def test_intents_are_defined_once_and_reused():
    m = build("""
        a:
          expect:
            - intent: money
              goto: b
            - otherwise: true
              goto: a
        b:
          expect:
            - intent: price
              goto: z
            - otherwise: true
              goto: z
        z:
          end: done
        """, INTENTS)
    assert route(m, "HOW much?") == "b"
    assert route(m, "donaton") == "b"
    state, _ = begin(m)
    assert say(m, state, "100 ok?")[0].vars["amount"] == "100"
    assert route(m, "hello") == "a"


def test_intents_come_from_included_files(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "intents.yaml").write_text(INTENTS, encoding="utf-8")
    main = tmp_path / "main.yaml"
    main.write_text("name: t\nversion: 1\nstart: a\ninclude: [shared/intents.yaml]\n"
                    "states:\n  a:\n    expect:\n      - intent: price\n        goto: z\n"
                    "      - otherwise: true\n        goto: z\n  z:\n    end: x\n",
                    encoding="utf-8")
    m = load_scenario(main)
    state, _ = begin(m)
    assert say(m, state, "how much")[0].node == "z"
    assert m.info.files == [str(main), f"{tmp_path}/shared/intents.yaml"]


def test_intent_errors():
    found = errors_of("""
        a:
          expect:
            - intent: prise
              goto: a
            - otherwise: true
              goto: a
        """, """
        intents:
          price: [price]
          loop_a: [{intent: loop_b}]
          loop_b: [{intent: loop_a}]
        """)
    assert "s.yaml:6:11: intents.loop_a: intent loop loop_a -> loop_b -> loop_a: an intent " \
           "cannot use itself" in found
    assert "s.yaml:11:17: states.a.expect[0].intent: unknown intent 'prise' (did you mean " \
           "'price'?)" in found


# ---------------------------------------------------------------------------------------------
# Transitions


def test_every_state_entered_is_a_transition_with_its_trigger():
    m = build("""
        a:
          goto: b
        b:
          expect:
            - keywords: [x]
              goto: c
            - otherwise: true
              goto: b
          timeout: {after: 1m, goto: c}
        c:
          end: done
        """)
    state, effects = begin(m)
    assert of(Transition, effects) == [Transition("", "a", "start"), Transition("a", "b", "goto")]
    _, effects = say(m, state, "x")
    assert of(Transition, effects) == [Transition("b", "c", "expect[0]")]
    _, effects = say(m, state, "y")
    assert of(Transition, effects) == [Transition("b", "b", "expect[1]")]
    _, effects = m.step(state, TimerFired(), T0 + 60)
    assert of(Transition, effects) == [Transition("b", "c", "timeout")]


# ---------------------------------------------------------------------------------------------
# Global handlers


GLOBALS = """
globals:
  - name: cop
    keywords: [cop]
    priority: 10
    goto: cop_check
  - name: help
    keywords: [help]
    say: "help text"
    return: true
  - name: stop
    regex: '^\\W*stop\\W*$'
    priority: 100
    opt_out: "unsubscribed"
    goto: out
"""
GLOBAL_STATES = """
a:
  say: "a?"
  expect:
    - keywords: [cop, help, stop]
      goto: never
    - otherwise: true
      goto: b
  timeout: {after: 10m, goto: b}
b:
  say: "b?"
  skip_globals: [cop]
  expect:
    - keywords: [cop]
      goto: own
    - otherwise: true
      goto: never
cop_check:
  say: "no"
  expect:
    - otherwise: true
      return: true
out:
  skip_globals: all
  expect:
    - keywords: [start]
      opt_in: "welcome back"
      return: true
    - otherwise: true
      stay: true
own:
  end: own
never:
  end: never
"""


def test_a_global_handler_applies_in_every_state_before_its_own_entries():
    m = build(GLOBAL_STATES, GLOBALS)
    state, _ = begin(m)
    state, effects = say(m, state, "r u a cop?", now=T0 + 5)
    assert state.node == "cop_check"
    assert of(Transition, effects) == [Transition("a", "cop_check", "global:cop")]
    assert state.returns == ["a"]
    # cop_check's return goes back to a, silently, with a's timeout running again
    state, effects = say(m, state, "ok", now=T0 + 100)
    assert state.node == "a" and sent(effects) == []
    assert of(Transition, effects) == [Transition("cop_check", "a", "return")]
    assert state.timer_at == T0 + 100 + 600 and state.returns == []


def test_a_handler_that_returns_answers_in_place():
    m = build(GLOBAL_STATES, GLOBALS)
    state, _ = begin(m)
    new, effects = say(m, state, "HELP", now=T0 + 30)
    assert new.node == "a" and sent(effects) == ["help text"]
    assert of(Transition, effects) == []
    assert new.timer_at == T0 + 30 + 600  # the reply restarts the state's timer
    assert new.turn == state.turn + 1


def test_skip_globals_lets_a_state_handle_it_itself():
    m = build(GLOBAL_STATES, GLOBALS)
    state, _ = begin(m)
    state, _ = say(m, state, "hi")
    assert state.node == "b"
    assert say(m, state, "cop")[0].node == "own"
    assert say(m, state, "stop")[0].node == "out"  # not skipped


def test_priority_orders_handlers():
    m = build(GLOBAL_STATES, GLOBALS)
    state, _ = begin(m)
    # "stop" (priority 100) is tried before "cop" (10), whatever the file order
    assert say(m, state, "stop")[0].node == "out"
    assert [e.name for e in m.nodes["a"].globals] == ["stop", "cop", "help"]


def test_stop_opts_out_and_start_opts_back_in():
    m = build(GLOBAL_STATES, GLOBALS)
    state, _ = begin(m)
    state, effects = say(m, state, "STOP!")
    assert state.node == "out"
    assert of(OptOut, effects) == [OptOut("unsubscribed")] and sent(effects) == []
    state, effects = say(m, state, "help cop")  # handlers are skipped in `out`
    assert state.node == "out" and sent(effects) == [] and not of(OptOut, effects)
    state, effects = say(m, state, "start")
    assert of(OptIn, effects) == [OptIn("welcome back")]
    assert state.node == "a"


# ---------------------------------------------------------------------------------------------
# Includes


def test_including_a_file_shares_its_states_and_own_definitions_win(tmp_path):
    (tmp_path / "base.yaml").write_text(textwrap.dedent("""
        name: base
        version: 3
        start: a
        settings:
          merge: 9s
        globals:
          - name: help
            keywords: [help]
            say: "base help"
            return: true
        states:
          a:
            say: "base a"
            expect:
              - otherwise: true
                goto: b
          b:
            say: "base b"
            end: done
          unused:
            say: "never reached"
            end: done
        """), encoding="utf-8")
    (tmp_path / "child.yaml").write_text(textwrap.dedent("""
        name: child
        version: 1
        start: a
        include: [base.yaml]
        globals:
          - name: help
            keywords: [help]
            say: "child help"
            return: true
        states:
          b:
            say: "child b"
            end: done
        """), encoding="utf-8")
    m = load_scenario(tmp_path / "child.yaml")
    assert (m.name, m.version) == ("child", 1)
    assert sorted(m.nodes) == ["a", "b"]  # the included state nobody reaches is dropped
    state, effects = begin(m)
    assert sent(effects) == ["base a"]
    assert m.merge_window(state) == 9
    assert sent(say(m, state, "help")[1]) == ["child help"]
    assert sent(say(m, state, "hi")[1]) == ["child b"]


def test_include_errors_point_into_the_right_file(tmp_path):
    (tmp_path / "lib.yaml").write_text("states:\n  b:\n    goto: nowhere\n", encoding="utf-8")
    (tmp_path / "loop.yaml").write_text("include: [loop.yaml]\n", encoding="utf-8")
    main = tmp_path / "main.yaml"
    main.write_text("name: t\nversion: 1\nstart: a\ninclude: [lib.yaml, missing.yaml, "
                    "loop.yaml]\nstates:\n  a:\n    end: x\n", encoding="utf-8")
    with pytest.raises(ScenarioErrors) as info:
        load_scenario(main)
    found = [e.render() for e in info.value.errors]
    assert found[0] == (f"{main}:4:21: include[1]: cannot read the included file "
                        f"'missing.yaml' ({tmp_path}/missing.yaml): No such file or directory")
    assert found[1] == f"{tmp_path}/lib.yaml:3:11: states.b.goto: unknown state 'nowhere'"
    assert found[2] == f"{tmp_path}/loop.yaml:1:11: include[0]: include loop: " \
                       f"{tmp_path}/loop.yaml -> {tmp_path}/loop.yaml"


# ---------------------------------------------------------------------------------------------
# Conditions, splits, visit limits


CONDITION = """
a:
  if: {var: persona.age, lt: 18}
  then: minor
  else: grown
minor:
  end: minor
grown:
  if: [{var: city.name, in: [Seattle, Tacoma]}, {var: persona.style, exists: true}]
  then: local
  else: away
local:
  end: local
away:
  end: away
"""


@pytest.mark.parametrize(("changes", "outcome"), [
    ({"persona.age": "16"}, "minor"), ({"persona.age": "17.5"}, "minor"),
    ({"persona.age": "18"}, "local"), ({"persona.age": ""}, "local"),
    ({"city.name": "seattle"}, "local"), ({"city.name": "Atlanta"}, "away"),
    ({"persona.style": ""}, "away"),
])
def test_if_then_else_on_persona_and_variables(changes, outcome):
    m = build(CONDITION)
    state, effects = begin(m, context={**CONTEXT, **changes})
    assert state.outcome == outcome
    assert of(Transition, effects)[1].trigger in ("then", "else")


@pytest.mark.parametrize(("condition", "holds"), [
    ("{var: persona.name, equals: jasmine}", True), ("{var: persona.age, equals: 23.0}", True),
    ("{var: persona.name, not_equals: Jasmine}", False), ("{var: persona.age, ge: 23}", True),
    ("{var: persona.age, gt: 23}", False), ("{var: persona.age, le: 23, gt: 20}", True),
    ("{var: persona.name, lt: 5}", False), ("{var: his_name, exists: false}", True),
])
def test_condition_tests(condition, holds):
    m = build(f"a:\n  set: {{his_name: ''}}\n  if: {condition}\n  then: y\n  else: n\n"
              "y:\n  end: y\nn:\n  end: n\n")
    assert begin(m)[0].outcome == ("y" if holds else "n")


def test_a_random_split_is_weighted_recorded_and_sticky():
    m = build("""
        a:
          split:
            record: test
            branches:
              - {name: warm, weight: 3, goto: b}
              - {goto: c}
        b:
          expect:
            - otherwise: true
              goto: a
        c:
          expect:
            - otherwise: true
              goto: a
        """)
    counts = Counter(begin(m, seed=seed)[0].vars["test"] for seed in range(2000))
    assert set(counts) == {"warm", "c"} and 1350 < counts["warm"] < 1650
    state, effects = begin(m, seed=7)
    chosen = state.vars["test"]
    assert of(Tag, effects) == [Tag(f"test:{chosen}")]
    assert of(Transition, effects)[1].trigger == f"split:{chosen}"
    for _ in range(5):  # a second visit keeps the branch and does not tag again
        state, effects = say(m, state, "again")
        assert state.vars["test"] == chosen and of(Tag, effects) == []


def test_a_visit_limit_sends_the_conversation_elsewhere():
    m = build("""
        a:
          say: "again?"
          expect:
            - otherwise: true
              goto: a
          visits: {max: 3, goto: z}
        z:
          say: "enough"
          end: limit
        """)
    state, _ = begin(m)
    state, _ = say(m, state, "1")
    state, effects = say(m, state, "2")
    assert state.node == "a" and state.visits == {"a": 3}
    state, effects = say(m, state, "3")
    assert state.outcome == "limit" and sent(effects) == ["enough"]
    assert of(Transition, effects) == [Transition("a", "z", "visits:a")]


def test_a_default_visit_limit_applies_to_every_state_but_its_target():
    m = build("""
        a:
          expect:
            - otherwise: true
              goto: a
        z:
          end: limit
        """, "settings:\n  visits: {max: 2, goto: z}\n")
    assert m.nodes["a"].visits == VisitLimit(2, "z") and m.nodes["z"].visits is None


# ---------------------------------------------------------------------------------------------
# Deadlines: timeouts and expiry


EXPIRY = """
a:
  expect:
    - otherwise: true
      goto: b
b:
  say: "b"
  expect:
    - otherwise: true
      goto: b
  timeout: {after: 1h, goto: c}
c:
  say: "nudge"
  expect:
    - otherwise: true
      goto: b
"""


def test_expiry_ends_a_silent_conversation_and_replies_postpone_it():
    m = build(EXPIRY, "settings:\n  expire: {after: 1d}\n")
    state, effects = begin(m)
    assert state.deadlines == {"expire": T0 + 86400} and state.timer_at == T0 + 86400
    assert of(SetTimer, effects) == [SetTimer(T0 + 86400)]
    state, effects = say(m, state, "hi", now=T0 + 100)
    assert state.deadlines == {"expire": T0 + 100 + 86400, "timeout": T0 + 100 + 3600}
    assert state.timer_at == T0 + 3700
    state, effects = m.step(state, TimerFired(), T0 + 3700)  # the timeout: a nudge
    assert state.node == "c" and sent(effects) == ["nudge"]
    assert state.deadlines == {"expire": T0 + 100 + 86400}  # a nudge does not postpone expiry
    state, effects = m.step(state, TimerFired(), T0 + 100 + 86400)
    assert state.outcome == "expired"
    assert of(End, effects) == [End("expired")] and of(CancelTimer, effects) == [CancelTimer()]
    assert state.deadlines == {} and state.timer_at is None


def test_expiry_can_go_to_a_state():
    m = build(EXPIRY + "bye:\n  say: 'bye'\n  end: expired\n",
              "settings:\n  expire: {after: 2h, goto: bye}\n")
    state, _ = begin(m)
    state, effects = m.step(state, TimerFired(), T0 + 7200)
    assert sent(effects) == ["bye"] and state.outcome == "expired"
    assert of(Transition, effects) == [Transition("a", "bye", "expired")]


def test_a_late_timer_handles_each_due_deadline_in_order():
    m = build(EXPIRY, "settings:\n  expire: {after: 2h}\n")
    state, _ = begin(m)
    state, _ = say(m, state, "hi", now=T0)
    # the runtime was down: both the timeout (1h) and the expiry (2h) are due
    state, effects = m.step(state, TimerFired(), T0 + 5 * 3600)
    assert [t.target for t in of(Transition, effects)] == ["c"]
    assert state.outcome == "expired" and sent(effects) == ["nudge"]


def test_a_state_saved_before_named_deadlines_still_times_out():
    m = build(EXPIRY)
    state = ConversationState(scenario="t", version=1, node="b", turn=2, timer_at=T0)
    assert m.step(state, TimerFired(), T0)[0].node == "c"


# ---------------------------------------------------------------------------------------------
# Merging, delays and busy pauses


def test_merge_windows_from_the_scenario_and_the_state():
    m = build("""
        a:
          expect:
            - otherwise: true
              goto: b
        b:
          merge: 0s
          expect:
            - otherwise: true
              goto: z
        z:
          end: done
        """, "settings:\n  merge: 15s\n")
    fresh = m.new_state(seed=0, context=CONTEXT)
    assert m.merge_window(fresh) == 15  # before Start: the start state's window
    state, _ = begin(m)
    assert m.merge_window(state) == 15
    state, _ = say(m, state, "hey\nu avail\ntonite?")
    assert m.merge_window(state) == 0
    state, _ = say(m, state, "x")
    assert state.ended and m.merge_window(state) == 0


def test_delay_scale_and_busy_pauses():
    m = build("""
        a:
          say: "slow"
          delay: 2.5
          expect:
            - otherwise: true
              goto: b
        b:
          say: [["one", "two"]]
          busy: {chance: 1, min: 2m, max: 5m}
          expect:
            - otherwise: true
              goto: c
        c:
          say: "normal"
          end: done
        """, "settings:\n  delay: 0.5\n")
    state, effects = begin(m)
    assert of(Send, effects) == [Send("slow", delay_scale=2.5, extra=0.0)]
    state, effects = say(m, state, "x")
    first, second = of(Send, effects)
    assert first.delay_scale == 0.5 and 120 <= first.extra <= 300 and second.extra == 0.0
    assert say(m, state, "x") == say(m, state, "x")  # drawn from the state's seed
    _, effects = say(m, state, "y")
    assert of(Send, effects) == [Send("normal", delay_scale=0.5, extra=0.0)]


def test_busy_pauses_happen_with_their_chance():
    m = build("a:\n  say: hi\n  end: done\n", "settings:\n  busy: {chance: 0.25, min: 1m, "
              "max: 1m}\n")
    extras = [of(Send, begin(m, seed=seed)[1])[0].extra for seed in range(2000)]
    assert set(extras) == {0.0, 60.0}
    assert 400 < extras.count(60.0) < 600


# ---------------------------------------------------------------------------------------------
# Actions: set, tag, lookup, hand-off, opt-out, end


def test_set_tag_and_lookup_actions():
    m = build("""
        a:
          set: {greeting: "hi {persona.name}"}
          tag: [first, contact]
          lookup: caller_name
          say: "{greeting}"
          expect:
            - keywords: [x]
              tag: said-x
              set: {said: "{message}!"}
              say: "noted"
              goto: b
            - otherwise: true
              goto: b
          on_lookup:
            - kind: caller_name
              ok: true
              field: name
              say: "hello {caller_name.name}"
              stay: true
            - ok: false
              tag: lookup-failed
              goto: b
        b:
          say: "{said|nothing} {caller_name.name|}"
          end: done
        """)
    state, effects = begin(m)
    assert [type(e).__name__ for e in effects] == ["Transition", "Tag", "Tag", "Lookup", "Send"]
    assert of(Lookup, effects) == [Lookup("caller_name")] and sent(effects) == ["hi Jasmine"]
    new, effects = m.step(state, LookupResult("caller_name", True, {"name": "Sam"}), T0 + 1)
    assert new.node == "a" and sent(effects) == ["hello Sam"]
    assert new.vars["caller_name.name"] == "Sam"
    new, effects = m.step(state, LookupResult("caller_name", False), T0 + 1)
    assert new.node == "b" and of(Tag, effects) == [Tag("lookup-failed")]
    assert of(Transition, effects) == [Transition("a", "b", "lookup[1]")]
    new, effects = m.step(state, LookupResult("other", True, {"x": "1"}), T0 + 1)
    assert new.node == "a" and effects == [] and new.vars["other.x"] == "1"
    new, effects = say(m, state, "X")
    assert of(Tag, effects) == [Tag("said-x")] and sent(effects) == ["noted", "X! "]


def test_hand_off_pauses_until_an_operator_resumes():
    m = build("""
        a:
          expect:
            - keywords: [person]
              goto: person
            - otherwise: true
              goto: a
          timeout: {after: 1h, goto: a}
        person:
          say: "someone will text you"
          handoff: {reason: wants help, resume: back}
        back:
          say: "i'm back"
          expect:
            - otherwise: true
              goto: a
        other:
          say: "elsewhere"
          end: done
        """, GLOBALS.replace("goto: cop_check", "goto: a").replace("goto: out", "goto: other"))
    state, _ = begin(m)
    state, effects = say(m, state, "a person please")
    assert state.paused and state.node == "person" and state.deadlines == {}
    assert of(HandOff, effects) == [HandOff("wants help")] and of(CancelTimer, effects)
    assert say(m, state, "hello?") == (state, [])  # silent while a person has it
    assert m.step(state, TimerFired(), T0 + 10**6) == (state, [])
    assert m.merge_window(state) == 0
    resumed, effects = m.step(state, Resume(), T0 + 500)
    assert not resumed.paused and resumed.node == "back" and sent(effects) == ["i'm back"]
    assert of(Transition, effects) == [Transition("person", "back", "resume")]
    elsewhere, _ = m.step(state, Resume(state="other"), T0 + 500)
    assert elsewhere.outcome == "done"
    with pytest.raises(EngineError, match="not handed off"):
        m.step(resumed, Resume(), T0)
    with pytest.raises(EngineError, match="cannot resume at 'nowhere'"):
        m.step(state, Resume(state="nowhere"), T0)
    # STOP still works while a person has the conversation
    stopped, effects = say(m, state, "stop")
    assert of(OptOut, effects) == [OptOut("unsubscribed")] and not stopped.paused


def test_opt_out_and_end_on_a_state():
    m = build("a:\n  opt_out: 'bye for good'\n  end: opted_out\n")
    state, effects = begin(m)
    assert [type(e).__name__ for e in effects] == ["Transition", "OptOut", "End"]
    assert state.outcome == "opted_out"


# ---------------------------------------------------------------------------------------------
# Purity and the saved state


def test_the_new_state_fields_survive_json_and_steps_are_pure():
    m = build(GLOBAL_STATES, GLOBALS + "settings:\n  expire: {after: 1d}\n")
    state, _ = begin(m)
    state, _ = say(m, state, "cop")
    copy = msgspec.json.decode(msgspec.json.encode(state), type=ConversationState)
    assert copy == state and copy.returns == ["a"] and "expire" in copy.deadlines
    before = msgspec.json.encode(state)
    assert say(m, state, "x") == say(m, state, "x")
    assert msgspec.json.encode(state) == before


def test_lookup_result_and_resume_events_round_trip():
    event = msgspec.json.decode(msgspec.json.encode(Resume(state="b")), type=Resume)
    assert event.state == "b"


# ---------------------------------------------------------------------------------------------
# Compiler errors for the new constructs


@pytest.mark.parametrize(("states", "head", "expected"), [
    ("a:\n  expect:\n    - otherwise: true\n      goto: a\n      stay: true\n", "",
     "s.yaml:8:9: states.a.expect[0]: give exactly one of 'goto' (a state), 'return: true' or "
     "'stay: true'; found goto, stay"),
    ("a:\n  expect:\n    - answer: maybe\n      goto: a\n    - otherwise: true\n      goto: a\n",
     "", "s.yaml:8:17: states.a.expect[0].answer: must be 'yes' or 'no', got 'maybe'"),
    ("a:\n  expect:\n    - has: photo\n      goto: a\n    - otherwise: true\n      goto: a\n",
     "", "s.yaml:8:14: states.a.expect[0].has: must be 'media', 'phone' or 'url', got 'photo'"),
    ("a:\n  expect:\n    - number: {min: 5, max: 1}\n      goto: a\n    - otherwise: true\n"
     "      goto: a\n", "", "s.yaml:8:17: states.a.expect[0].number: min (5) is more than max "
     "(1)"),
    ("a:\n  if: {var: persona.agee, lt: 18}\n  then: a\n  else: a\n", "",
     "s.yaml:7:15: states.a.if.var: unknown variable 'persona.agee' (did you mean "
     "'persona.age'?)"),
    ("a:\n  if: {var: persona.age}\n  then: b\n  else: b\nb:\n  end: x\n", "",
     "s.yaml:7:9: states.a.if: give a test: equals, not_equals, in, exists, lt, le, gt or ge"),
    ("a:\n  if: {var: persona.age, lt: 1}\n  then: b\nb:\n  end: x\n", "",
     "s.yaml:7:5: states.a: 'if' needs 'else': the state to go to when the test does not "
     "hold"),
    ("a:\n  then: b\n  end: x\nb:\n  end: x\n", "",
     "s.yaml:7:11: states.a.then: 'then' only makes sense with 'if'"),
    ("a:\n  split:\n    record: ab\n    branches: [{goto: b}, {goto: b}]\nb:\n  end: x\n", "",
     "s.yaml:9:29: states.a.split.branches[1]: two branches named 'b': give each a different "
     "'name'"),
    ("a:\n  handoff: {resume: nowhere}\n", "",
     "s.yaml:7:23: states.a.handoff.resume: unknown state 'nowhere'"),
    ("a:\n  end: x\n  visits: {max: 2, goto: b}\n", "",
     "s.yaml:8:28: states.a.visits.goto: unknown state 'b'"),
    ("a:\n  expect:\n    - otherwise: true\n      goto: a\n  skip_globals: [hepl]\n",
     "globals:\n  - name: help\n    keywords: [help]\n    return: true\n",
     "s.yaml:13:20: states.a.skip_globals[0]: unknown global handler 'hepl' (did you mean "
     "'help'?)"),
    ("a:\n  end: x\n", "globals:\n  - keywords: [help]\n    return: true\n",
     "s.yaml:5:5: globals[0]: give the handler a 'name' (it names the handler in stats and in "
     "skip_globals)"),
    ("a:\n  end: x\n", "globals:\n  - name: all\n    otherwise: true\n    return: true\n",
     "s.yaml:6:16: globals[0].otherwise: a global handler cannot use 'otherwise': it would "
     "take every reply in every state"),
    ("a:\n  end: x\n", "settings:\n  expire: {after: 0s}\n",
     "s.yaml:5:19: settings.expire.after: must be longer than zero"),
    ("a:\n  end: x\n", "settings:\n  busy: {chance: 0.5, min: 5m, max: 1m}\n",
     "s.yaml:5:9: settings.busy: min (5m) is longer than max (1m)"),
    ("a:\n  end: x\n", "settings:\n  merj: 5s\n", "s.yaml:5:9: settings.merj: unknown field "
     "'merj'"),
    ("a:\n  expect:\n    - otherwise: true\n      goto: a\n  on_lookup:\n    - otherwise: true\n"
     "      kind: x\n      stay: true\n", "", "s.yaml:11:9: states.a.on_lookup[0]: 'otherwise' "
     "takes every answer: leave out kind, ok and field"),
    ("a:\n  goto: b\n  visits: {max: 1, goto: b}\nb:\n  if: {var: message, exists: true}\n"
     "  then: a\n  else: a\n", "", "s.yaml:8:13: states.a.visits: 'visits' loop a -> b -> a: "
     "the conversation would never wait for a reply"),
    ("a:\n  set: {bad name: x}\n  end: x\n", "", "s.yaml:7:21: states.a.set.bad name: bad "
     "variable name 'bad name': use letters, digits and '_', with at most one dot"),
])
def test_compiler_errors(states, head, expected):
    assert expected in errors_of(states, head)


def test_an_included_file_may_leave_out_name_version_and_start_but_a_scenario_may_not(tmp_path):
    (tmp_path / "lib.yaml").write_text("states:\n  a:\n    end: x\n", encoding="utf-8")
    main = tmp_path / "main.yaml"
    main.write_text("include: [lib.yaml]\n", encoding="utf-8")
    with pytest.raises(ScenarioErrors) as info:
        load_scenario(main)
    assert [e.message for e in info.value.errors] == [
        "missing required field 'name'", "missing required field 'version'",
        "missing required field 'start'"]


def test_the_shipped_include_files_are_libraries():
    root = Path(__file__).resolve().parent.parent / "scenarios" / "shared"
    for path in root.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "\nname:" not in text and "\nstart:" not in text, path


def test_capture_on_a_keyword_entry_keeps_the_whole_reply_and_phrase_lists():
    m = build("""
        a:
          expect:
            - phrase: [how much, what rate]
              capture: asked
              lookup: number
              goto: b
            - otherwise: true
              goto: a
        b:
          end: done
        """)
    state, _ = begin(m)
    new, effects = say(m, state, "ok WHAT  rate?")
    assert new.vars["asked"] == "ok WHAT  rate?"
    assert of(Capture, effects) == [Capture("asked", "ok WHAT  rate?")]
    assert of(Lookup, effects) == [Lookup("number")]


def test_return_without_an_interrupted_state_stays():
    m = build("""
        a:
          say: "hi"
          expect:
            - otherwise: true
              return: true
          timeout: {after: 1m, goto: z}
        z:
          end: done
        """)
    state, _ = begin(m)
    new, effects = say(m, state, "hello", now=T0 + 30)
    assert new.node == "a" and sent(effects) == [] and new.timer_at == T0 + 90


def test_the_return_stack_is_bounded():
    m = build(GLOBAL_STATES, GLOBALS)
    state, _ = begin(m)
    for i in range(20):  # cop_check interrupted by itself, again and again
        state, _ = say(m, state, "cop", now=T0 + i)
    assert len(state.returns) == 8


def test_a_mis_indented_key_gets_a_hint_naming_the_line_it_belongs_with():
    dedented = errors_of("""
        a:
          say: hi
          expect:
            - otherwise: true
              goto: b
        timeout:
          after: 20m
          goto: b
        b:
          end: done
        """)
    assert dedented == ["s.yaml:12:12: states.timeout.after: unknown field 'after'; 'timeout' "
                        "(line 11) is read as a state because it is indented like one: if it is "
                        "the 'timeout' of state 'a', indent it under that state, at column 5 "
                        "like the key at line 7"]
    too_deep = errors_of("""
        a:
          say: hi
          expect:
            - otherwise: true
              goto: b
              timeout: {after: 20m, goto: b}
        b:
          end: done
        """)
    assert too_deep == ["s.yaml:11:18: states.a.expect[0].timeout: unknown field 'timeout'; "
                        "'timeout' is a key of the state 'a', not of what it sits in: dedent it "
                        "to column 5, like the key at line 7"]
    too_shallow = errors_of("""
        a:
          expect:
            - keywords: [x]
              goto: b
          otherwise: true
        b:
          end: done
        """)
    assert too_shallow == ["s.yaml:10:16: states.a.otherwise: unknown field 'otherwise'; "
                           "'otherwise' is a key of an 'expect' entry, not of the state: indent "
                           "it to column 9, under the entry at line 8"]
    # a state may be named like a key when nothing is wrong with it
    assert build("a:\n  goto: timeout\ntimeout:\n  end: done\n").start == "a"


def test_a_lookup_kind_the_runtime_does_not_answer_is_an_error_with_the_closest_kind():
    errors = errors_of("""
        a:
          lookup: numbr
          expect:
            - otherwise: true
              lookup: caller
              stay: true
          on_lookup:
            - kind: buyr
              stay: true
        """)
    known = "the runtime answers 'number', 'caller_name', 'buyer'"
    assert errors == [
        f"s.yaml:7:13: states.a.lookup: unknown lookup kind 'numbr': did you mean 'number'? "
        f"{known}",
        f"s.yaml:10:17: states.a.expect[0].lookup: unknown lookup kind 'caller': did you mean "
        f"'caller_name'? {known}",
        f"s.yaml:13:15: states.a.on_lookup[0].kind: unknown lookup kind 'buyr': did you mean "
        f"'buyer'? {known}",
    ]
    assert "did you mean" not in errors_of("a:\n  lookup: weather\n  end: x\n")[0]


def test_a_type_error_does_not_hide_the_other_errors_of_the_file():
    errors = errors_of("""
        a:
          if: {var: persona.age, lt: "x"}
          then: b
          else: c
        b:
          say: "hi {wat}"
          expect:
            - keywords: [hi]
              capture: got
              goto: nowhere
            - otherwise: true
              stay: true
        c:
          say: "{got}"
          goto: a
        """)
    assert errors == [
        "s.yaml:7:32: states.a.if.lt: expected 'float', got 'str'",
        "s.yaml:11:10: states.b.say: unknown placeholder {wat}: known are city.deterrence, "
        "city.link, city.name, city.region, got, language, message, persona.age, "
        "persona.language, persona.name, persona.style",
        "s.yaml:15:15: states.b.expect[0].goto: unknown state 'nowhere'",
    ]
    # type errors in the head, an intent, a handler and a setting are reported with the rest
    errors = errors_of("""
        a:
          say: hi
          skip_globals: [help]
          expect:
            - intent: hello
              goto: b
            - otherwise: true
              stay: true
        """, head="""
        intents:
          hello: [hello, {keywords: 5}]
        globals:
          - name: help
            keywords: [help]
            say: 3
            return: true
        settings:
          merge: [5s]
        """)
    assert [e.split(": ", 2)[1] for e in errors] == [
        "intents.hello[1].keywords", "globals[0].say", "settings.merge",
        "states.a.expect[0].goto"]
