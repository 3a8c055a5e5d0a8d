"""The pure engine: scenario compilation and `Machine.step`, with plain synchronous tests."""

from __future__ import annotations

import re
import textwrap

import msgspec
import pytest

from intercept.engine import (
    CancelTimer,
    Capture,
    ConversationState,
    End,
    Machine,
    Message,
    Send,
    SetTimer,
    Start,
    TimerFired,
    Transition,
    compile_text,
    load_scenario,
)
from intercept.engine.machine import Timeout
from intercept.errors import EngineError, ScenarioError, ScenarioErrors

CONTEXT = {
    "persona.name": "Jasmine", "persona.age": "23", "persona.style": "casual",
    "city.name": "Seattle", "city.link": "https://help.example/sea", "city.region": "US",
}
T0 = 1_700_000_000.0


def scenario(states: str, *, start: str = "a", name: str = "t", version: int = 1) -> str:
    """A scenario file: four header lines, then `states` indented under `states:` (line 5 on)."""
    body = textwrap.indent(textwrap.dedent(states).strip("\n") + "\n", "  ")
    return f"name: {name}\nversion: {version}\nstart: {start}\nstates:\n{body}"


def machine(states: str, **kwargs) -> Machine:
    return compile_text(scenario(states, **kwargs), file="t.yaml")


def begin(m: Machine, *, seed: int = 0, now: float = T0):
    return m.step(m.new_state(seed=seed, context=CONTEXT), Start(), now)


def sent(effects) -> list[str]:
    return [e.text for e in effects if isinstance(e, Send)]


def core(effects) -> list:
    """The effects without the `Transition` records (tested on their own)."""
    return [e for e in effects if not isinstance(e, Transition)]


def reply(m: Machine, state: ConversationState, text: str, now: float = T0 + 1, **kw):
    return m.step(state, Message(text, **kw), now)


# A small scenario that waits for a reply and routes it.
ROUTER = """
a:
  expect:
    - keywords: [price, how much, $, 💰, 100]
      goto: price
    - keywords: [strasse, ﬁne]
      goto: folded
    - keywords: [no, yes, on, off]
      goto: yesno
    - regex: '(?P<when>\\d{1,2}\\s*pm)'
      goto: when
    - keywords: [pic]
      goto: pic
    - otherwise: true
      goto: other
price:
  say: "price"
  end: price
folded:
  say: "folded"
  end: folded
yesno:
  say: "yes/no: {message}"
  end: yesno
when:
  say: "see u at {when}"
  end: when
pic:
  say: "pic"
  end: pic
other:
  say: "other: {message}"
  end: other
"""


def route(text: str, **kw) -> tuple[str, list[str]]:
    m = machine(ROUTER)
    state, _ = begin(m)
    state, effects = reply(m, state, text, **kw)
    return state.node, sent(effects)


# ---------------------------------------------------------------------------------------------
# Starting


def test_start_enters_the_start_state_and_says_its_messages():
    m = machine("""
        hello:
          say: "hi i'm {persona.name} in {city.name}"
          expect:
            - otherwise: true
              goto: bye
        bye:
          end: done
        """, start="hello")
    state = m.new_state(seed=1, context=CONTEXT)
    assert not state.started
    new, effects = m.step(state, Start(), T0)
    assert new.node == "hello"
    assert new.started and not new.ended
    assert core(effects) == [Send("hi i'm Jasmine in Seattle")]
    assert effects[0] == Transition("", "hello", "start")


def test_a_start_state_without_say_sends_nothing():
    state, effects = begin(machine(ROUTER))
    assert state.node == "a"
    assert effects == [Transition("", "a", "start")]


# ---------------------------------------------------------------------------------------------
# Matching


@pytest.mark.parametrize("text", ["price?", "PRICE", "Price pls", "how much", "HOW   much??",
                                  "is it $150", "💰", "100 ok?", "ｐｒｉｃｅ"])
def test_keywords_words_phrases_symbols_ignore_case_and_fold_unicode(text):
    assert route(text)[0] == "price"


@pytest.mark.parametrize("text", ["priceless", "how is it much", "1000", "much how"])
def test_keywords_match_whole_words_and_phrases_only(text):
    assert route(text)[0] == "other"


@pytest.mark.parametrize("text", ["STRAßE", "ﬁne", "FINE"])
def test_keywords_are_matched_after_nfkc_and_casefold(text):
    assert route(text)[0] == "folded"


@pytest.mark.parametrize("text", ["no", "Yes!", "on my way", "off"])
def test_yaml_yes_no_on_off_stay_words_in_keywords(text):
    assert route(text)[0] == "yesno"


def test_yes_no_keywords_compile_to_strings():
    m = machine(ROUTER)
    assert m.nodes["a"].expect[2].matcher.words == frozenset({"no", "yes", "on", "off"})


def test_regex_named_groups_become_variables_and_capture_effects():
    m = machine(ROUTER)
    state, _ = begin(m)
    new, effects = reply(m, state, "maybe 8 pm?")
    assert new.node == "when"
    assert effects[0] == Capture("when", "8 pm")
    assert sent(effects) == ["see u at 8 pm"]
    assert new.vars["when"] == "8 pm"


def test_regex_is_case_insensitive_and_captures_the_text_as_written():
    node, texts = route("8PM")
    assert node == "when"
    assert texts == ["see u at 8PM"]
    assert route("８ＰＭ") == ("when", ["see u at 8PM"])  # NFKC: full-width digits read as 8


def test_first_matching_entry_wins():
    # "how much at 8pm" matches both the price keywords and the regex; price comes first.
    assert route("how much at 8pm")[0] == "price"


def test_otherwise_takes_anything_else_including_an_empty_photo_message():
    assert route("hello there") == ("other", ["other: hello there"])
    assert route("", media=("https://mms.example/1.jpg",)) == ("other", ["other: "])


def test_message_placeholder_is_the_original_text():
    assert route("No") == ("yesno", ["yes/no: No"])


# ---------------------------------------------------------------------------------------------
# Templates and variables


VARS = """
a:
  set: {greeting: "hi from {persona.name}"}
  say: "{greeting}"
  expect:
    - regex: 'name is (?P<name>\\w+)'
      set: {hello: "hello {name}!"}
      goto: named
    - regex: 'call me(?P<name> \\w+)?'
      goto: named
    - otherwise: true
      goto: named
named:
  say: ["{hello|hey} {name|stranger} {{literal}} {persona.age}"]
  end: done
"""


def test_set_on_a_state_is_rendered_before_its_say():
    state, effects = begin(machine(VARS))
    assert sent(effects) == ["hi from Jasmine"]
    assert state.vars["greeting"] == "hi from Jasmine"


def test_set_on_a_reply_can_use_the_captured_values():
    m = machine(VARS)
    state, _ = begin(m)
    new, effects = reply(m, state, "my name is bob")
    assert sent(effects) == ["hello bob! bob {literal} 23"]
    assert new.vars["hello"] == "hello bob!"
    assert new.vars["name"] == "bob"


def test_fallbacks_are_used_for_unset_and_unmatched_values():
    m = machine(VARS)
    state, _ = begin(m)
    assert sent(reply(m, state, "whatever")[1]) == ["hey stranger {literal} 23"]
    # an optional group that did not take part in the match leaves the variable unset
    new, effects = reply(m, state, "call me")
    assert "name" not in new.vars
    assert [e for e in effects if isinstance(e, Capture)] == []
    assert sent(effects) == ["hey stranger {literal} 23"]


def test_unset_placeholder_without_fallback_renders_empty():
    m = machine("""
        a:
          expect:
            - regex: 'x(?P<v>y)?'
              goto: b
            - otherwise: true
              goto: b
        b:
          say: "[{v}]"
          end: done
        """)
    state, _ = begin(m)
    assert sent(reply(m, state, "x")[1]) == ["[]"]


# ---------------------------------------------------------------------------------------------
# Say variants


VARIANTS = """
a:
  say: ["one", "two", "three", "four", ["five", "five again"]]
  expect:
    - otherwise: true
      goto: a
"""


def test_variants_are_deterministic_for_a_seed():
    m = machine(VARIANTS)
    for seed in range(5):
        assert begin(m, seed=seed) == begin(m, seed=seed)


def test_variants_vary_across_seeds_and_visits():
    m = machine(VARIANTS)
    firsts = {tuple(sent(begin(m, seed=seed)[1])) for seed in range(40)}
    assert firsts == {("one",), ("two",), ("three",), ("four",), ("five", "five again")}
    state, effects = begin(m, seed=7)
    visits = [tuple(sent(effects))]
    for i in range(30):
        state, effects = reply(m, state, "again", now=T0 + i)
        visits.append(tuple(sent(effects)))
    assert len(set(visits)) > 1


def test_a_variant_that_is_a_list_sends_several_messages_in_order():
    m = machine("""
        a:
          say: [["first {persona.name}", "second", "third"]]
          end: done
        """)
    assert sent(begin(m)[1]) == ["first Jasmine", "second", "third"]


# ---------------------------------------------------------------------------------------------
# goto


def test_goto_chains_send_every_message_and_stop_at_a_waiting_state():
    m = machine("""
        a:
          say: "one"
          goto: b
        b:
          say: [["two", "three"]]
          set: {x: "from b"}
          goto: c
        c:
          say: "four {x}"
          expect:
            - otherwise: true
              goto: a
        """)
    state, effects = begin(m)
    assert sent(effects) == ["one", "two", "three", "four from b"]
    assert state.node == "c"
    assert state.turn == 1


# ---------------------------------------------------------------------------------------------
# Timeouts


TIMERS = """
a:
  say: "hello?"
  expect:
    - keywords: [wait]
      goto: b
    - keywords: [plain]
      goto: c
    - otherwise: true
      goto: a
  timeout: {after: 10m, goto: nudge}
b:
  expect:
    - otherwise: true
      goto: a
  timeout: {after: 90, goto: nudge}
c:
  say: "no timer here"
  expect:
    - otherwise: true
      goto: bye
nudge:
  say: "u there?"
  expect:
    - otherwise: true
      goto: bye
bye:
  say: "bye"
  end: gone
"""


def test_a_state_with_timeout_sets_a_timer():
    state, effects = begin(machine(TIMERS))
    assert core(effects) == [Send("hello?"), SetTimer(T0 + 600)]
    assert state.timer_at == T0 + 600


def test_timer_fired_before_the_deadline_is_ignored():
    m = machine(TIMERS)
    state, _ = begin(m)
    assert m.step(state, TimerFired(), T0 + 599.9) == (state, [])


def test_timer_fired_at_or_after_the_deadline_takes_the_timeout():
    m = machine(TIMERS)
    state, _ = begin(m)
    for now in (T0 + 600, T0 + 5000):
        new, effects = m.step(state, TimerFired(), now)
        assert new.node == "nudge"
        assert new.timer_at is None
        assert core(effects) == [Send("u there?"), CancelTimer()]
        assert effects[0] == Transition("a", "nudge", "timeout")


def test_a_reply_into_another_timed_state_replaces_the_timer():
    m = machine(TIMERS)
    state, _ = begin(m)
    new, effects = reply(m, state, "wait", now=T0 + 100)
    assert core(effects) == [SetTimer(T0 + 100 + 90)]  # a bare number is seconds
    assert new.timer_at == T0 + 190


def test_a_state_without_timeout_cancels_the_pending_timer():
    m = machine(TIMERS)
    state, _ = begin(m)
    new, effects = reply(m, state, "plain")
    assert core(effects) == [Send("no timer here"), CancelTimer()]
    assert new.timer_at is None
    assert m.step(new, TimerFired(), T0 + 10_000) == (new, [])


def test_no_cancel_when_no_timer_was_pending():
    m = machine(TIMERS)
    state, _ = begin(m)
    state, _ = reply(m, state, "plain")
    _, effects = reply(m, state, "x")
    assert core(effects) == [Send("bye"), End("gone")]


# ---------------------------------------------------------------------------------------------
# Ending


def test_an_end_state_records_the_outcome_and_cancels_the_timer():
    m = machine(TIMERS)
    state, _ = begin(m)
    state, _ = m.step(state, TimerFired(), T0 + 600)
    state, _ = reply(m, state, "hi", now=T0 + 601)
    assert state.ended and state.outcome == "gone"
    m2 = machine("""
        a:
          expect:
            - otherwise: true
              goto: z
          timeout: {after: 1h, goto: z}
        z:
          end: finished
        """)
    s2, _ = begin(m2)
    s2, effects = reply(m2, s2, "anything")
    assert core(effects) == [CancelTimer(), End("finished")]
    assert s2.outcome == "finished" and s2.timer_at is None


def test_events_after_the_end_are_ignored():
    m = machine(TIMERS)
    state, _ = begin(m)
    state, _ = reply(m, state, "plain")
    state, _ = reply(m, state, "x")
    assert state.ended
    assert reply(m, state, "hello?", now=T0 + 50) == (state, [])
    assert m.step(state, TimerFired(), T0 + 10**6) == (state, [])


def test_a_start_state_that_ends_at_once():
    m = machine("""
        a:
          say: "only this"
          end: said
        """)
    state, effects = begin(m)
    assert core(effects) == [Send("only this"), End("said")]
    assert state.outcome == "said"


# ---------------------------------------------------------------------------------------------
# Impossible events


def test_message_or_timer_before_start_is_an_error():
    m = machine(TIMERS)
    state = m.new_state(seed=0, context=CONTEXT)
    with pytest.raises(EngineError, match="before the conversation started"):
        m.step(state, Message("hi"), T0)
    with pytest.raises(EngineError, match="before the conversation started"):
        m.step(state, TimerFired(), T0)


def test_start_twice_is_an_error():
    m = machine(TIMERS)
    state, _ = begin(m)
    with pytest.raises(EngineError, match="already started"):
        m.step(state, Start(), T0)


@pytest.mark.parametrize("kwargs", [{"name": "other"}, {"version": 2}])
def test_a_state_from_another_scenario_or_version_is_an_error(kwargs):
    m = machine(TIMERS)
    foreign = machine(TIMERS, **kwargs)
    state, _ = begin(foreign)
    with pytest.raises(EngineError, match="belongs to scenario"):
        m.step(state, Message("hi"), T0)
    with pytest.raises(EngineError, match="belongs to scenario"):
        m.step(foreign.new_state(seed=0, context={}), Start(), T0)


def test_a_state_naming_a_missing_node_is_an_error():
    m = machine(TIMERS)
    state = ConversationState(scenario="t", version=1, node="gone", turn=3)
    with pytest.raises(EngineError, match="'gone' does not exist"):
        m.step(state, Message("hi"), T0)


# ---------------------------------------------------------------------------------------------
# Purity


def test_step_is_pure():
    m = machine(VARS)
    state, _ = begin(m, seed=99)
    before = msgspec.json.encode(state)
    first = reply(m, state, "my name is ann")
    second = reply(m, state, "my name is ann")
    assert first == second
    assert msgspec.json.encode(state) == before  # the input state was not changed
    assert first[0] is not state and first[0].vars is not state.vars


def test_state_survives_a_json_round_trip():
    m = machine(VARIANTS)
    state, _ = begin(m, seed=3)
    copy = msgspec.json.decode(msgspec.json.encode(state), type=ConversationState)
    assert reply(m, copy, "x") == reply(m, state, "x")


# ---------------------------------------------------------------------------------------------
# Compiler errors: every one is `file:line:col: path: message`


def errors(text: str, file: str = "s.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        compile_text(text, file=file)
    exc = info.value
    found = exc.errors if isinstance(exc, ScenarioErrors) else [exc]
    rendered = [e.render() for e in found]
    assert str(exc) == "\n".join(rendered)
    for line in rendered:
        assert re.match(r"^s\.yaml:\d+:\d+: ", line), line
    return rendered


def one_error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def test_unknown_state_suggests_the_closest_name():
    text = scenario("""
        a:
          expect:
            - otherwise: true
              goto: pricee
        price:
          end: done
        """)
    assert one_error(text) == ("s.yaml:8:15: states.a.expect[0].goto: unknown state 'pricee' "
                               "(did you mean 'price'?)")


def test_unknown_start_and_goto_and_timeout_targets():
    text = scenario("""
        a:
          say: hi
          goto: nowhere
        b:
          expect:
            - otherwise: true
              goto: a
          timeout: {after: 5m, goto: zzz}
        """, start="begin")
    assert errors(text) == [
        "s.yaml:3:8: start: unknown state 'begin'",
        "s.yaml:7:11: states.a.goto: unknown state 'nowhere'",
        "s.yaml:12:32: states.b.timeout.goto: unknown state 'zzz'",
    ]


def test_unknown_placeholder_lists_the_known_ones():
    text = scenario("""
        a:
          expect:
            - regex: '(?P<when>\\d+pm)'
              goto: b
            - otherwise: true
              goto: b
        b:
          say: ["ok", "see u {when} {persona.nme}"]
          end: done
        """)
    message = one_error(text)
    assert message.startswith("s.yaml:12:17: states.b.say[1]: unknown placeholder "
                              "{persona.nme}: known are city.deterrence, city.link, city.name")
    assert "persona.name" in message and "when" in message


def test_bad_placeholder_syntax():
    text = scenario("""
        a:
          say: "a { b"
          end: done
        """)
    assert one_error(text).startswith("s.yaml:6:10: states.a.say: unmatched '{'")


def test_missing_otherwise():
    text = scenario("""
        a:
          expect:
            - keywords: [hi]
              goto: a
          timeout: {after: 1m, goto: z}
        z:
          end: done
        """)
    assert one_error(text) == ("s.yaml:7:7: states.a.expect: no 'otherwise' entry: a reply that "
                               "matches nothing would get no answer")


def test_entry_after_otherwise_is_unreachable():
    text = scenario("""
        a:
          expect:
            - otherwise: true
              goto: a
            - keywords: [hi]
              goto: a
        """)
    assert one_error(text) == ("s.yaml:9:9: states.a.expect[1]: unreachable: it comes after "
                               "'otherwise', which matches everything")


def test_each_reply_gives_exactly_one_matcher():
    text = scenario("""
        a:
          expect:
            - keywords: [hi]
              regex: hi
              goto: a
            - otherwise: true
              goto: a
        """)
    assert one_error(text) == ("s.yaml:7:9: states.a.expect[0]: give exactly one of keywords, "
                               "all, phrase, fuzzy, regex, number, answer, has, intent or "
                               "'otherwise: true' in an expect entry; found keywords, regex")


@pytest.mark.parametrize(("body", "found"), [
    ('a:\n  say: "hi"\n', "none"),
    ("a:\n  goto: b\n  end: done\n", "goto, end"),
    ("a:\n  end: done\n  expect:\n    - otherwise: true\n      goto: b\n", "expect, end"),
])
def test_a_state_has_exactly_one_of_expect_goto_end(body, found):
    text = scenario(body + "b:\n  end: done\n")
    assert one_error(text) == ("s.yaml:6:5: states.a: a state needs exactly one of 'expect' "
                               "(wait for a reply), 'goto' (move on), 'if' (choose by a "
                               "variable), 'split' (choose at random), 'handoff' (to a person) "
                               f"or 'end' (finish with an outcome); found {found}")


def test_timeout_needs_expect():
    text = scenario("""
        a:
          say: hi
          goto: b
          timeout: {after: 1m, goto: b}
        b:
          end: done
        """)
    assert one_error(text) == ("s.yaml:8:14: states.a.timeout: a timeout only makes sense on a "
                               "state with 'expect'")


@pytest.mark.parametrize(("after", "message"), [
    ("20 minutes", "expected a duration like '15s', '20m' or '1h30m', got '20 minutes'"),
    ("0s", "must be longer than zero"),
    ("-5", "a duration cannot be negative, got -5"),
    ("yes", "expected a duration like '15s', '20m' or '1h30m', got 'yes'"),
])
def test_bad_timeout_durations(after, message):
    text = scenario(f"""
        a:
          expect:
            - otherwise: true
              goto: a
          timeout:
            after: {after}
            goto: a
        """)
    assert one_error(text) == f"s.yaml:10:14: states.a.timeout.after: {message}"


@pytest.mark.parametrize(("after", "seconds"), [
    ("15s", 15), ("20m", 1200), ("1h30m", 5400), ("2d", 172800), ("1.5h", 5400), ("500ms", 0.5),
    ("90", 90), ("'90'", 90),
])
def test_good_timeout_durations(after, seconds):
    m = machine(f"""
        a:
          expect:
            - otherwise: true
              goto: a
          timeout: {{after: {after}, goto: a}}
        """)
    assert m.nodes["a"].timeout == Timeout(seconds, "a")


def test_a_zero_timeout_is_reported_next_to_other_errors():
    text = scenario("""
        a:
          say: "{nope}"
          expect:
            - otherwise: true
              goto: a
          timeout: {after: 0m, goto: a}
        """)
    assert [e.split(": ")[1] for e in errors(text)] == ["states.a.say", "states.a.timeout.after"]


def test_goto_loop():
    text = scenario("""
        a:
          say: one
          goto: b
        b:
          say: two
          goto: a
        """)
    assert one_error(text) == ("s.yaml:7:11: states.a.goto: 'goto' loop a -> b -> a: the "
                               "conversation would never wait for a reply")


def test_unknown_field():
    text = scenario("""
        a:
          sya: hi
          end: done
        """)
    assert one_error(text) == "s.yaml:6:10: states.a.sya: unknown field 'sya'"


def test_unknown_field_in_a_reply():
    text = scenario("""
        a:
          expect:
            - otherwise: true
              go_to: a
        """)
    assert one_error(text) == "s.yaml:8:16: states.a.expect[0].go_to: unknown field 'go_to'"


@pytest.mark.parametrize(("text", "expected"), [
    ("name: t\nversion: one\nstart: a\nstates:\n  a:\n    end: x\n",
     "s.yaml:2:10: version: expected 'int', got 'str'"),
    ("name: t\nversion: 1\nstart: a\nstates:\n  a:\n    end: x\n    say: 5\n",
     "s.yaml:7:10: states.a.say: expected 'str | object | array', got 'int'"),
    ("name: t\nversion: 1\nstart: a\nstates:\n  a:\n    end: x\n    say: {a: b}\n",
     "s.yaml:7:14: states.a.say.a: 'a' is not a declared language (the scenario's 'languages': "
     "en); a per-language mapping has language codes as keys"),
    ("name: t\nversion: 1\nstart: a\nstates:\n  a:\n    expect:\n      - keywords: hi\n"
     "        goto: a\n", "s.yaml:7:19: states.a.expect[0].keywords: expected 'array', "
     "got 'str'"),
])
def test_wrong_type(text, expected):
    assert one_error(text) == expected


def test_missing_required_fields():
    assert one_error("version: 1\nstart: a\nstates:\n  a:\n    end: x\n") == \
        "s.yaml:1:1: missing required field 'name'"
    assert one_error("name: t\nversion: 1\nstart: a\n") == \
        "s.yaml:1:1: missing required field 'states'"
    assert one_error("name: t\nversion: 1\nstart: a\nstates: [a]\n") == \
        "s.yaml:4:9: states: must be a mapping of state names to states"


def test_not_a_mapping():
    assert one_error("- a\n- b\n") == ("s.yaml:1:1: a scenario file must be a mapping with name, "
                                       "version, start and states")


def test_yaml_syntax_error():
    text = scenario("""
        a:
          say: "unterminated
          end: done
        """)
    assert one_error(text) == ("s.yaml:8:1: YAML syntax error: found unexpected end of stream "
                               "(while scanning a quoted scalar at line 6, column 10)")


def test_yaml_syntax_error_bad_indentation():
    text = "name: t\nversion: 1\nstart: a\nstates:\n  a:\n    end: x\n   say: hi\n"
    assert one_error(text) == ("s.yaml:7:4: YAML syntax error: did not find expected key "
                               "(while parsing a block mapping at line 5, column 3)")


def test_duplicate_key():
    text = scenario("""
        a:
          say: hi
          end: done
        b:
          end: done
        a:
          end: again
        """)
    assert one_error(text) == "s.yaml:10:3: states.a: duplicate key 'a'"


def test_bad_regex():
    text = scenario("""
        a:
          expect:
            - regex: '(?P<x>unclosed'
              goto: a
            - otherwise: true
              goto: a
        """)
    assert one_error(text) == ("s.yaml:7:16: states.a.expect[0].regex: invalid regular "
                               "expression: missing ), unterminated subpattern at position 0")


def test_bad_state_name():
    text = scenario("""
        "1st":
          end: done
        """, start="1st")
    assert one_error(text).startswith("s.yaml:6:5: states.1st: bad state name '1st'")


def test_empty_lists_and_outcomes():
    text = scenario("""
        a:
          say: []
          expect: []
        b:
          say: [[]]
          end: ""
        """)
    assert errors(text) == [
        "s.yaml:6:10: states.a.say: an empty list: give at least one message",
        "s.yaml:7:13: states.a.expect: an empty list: add at least an 'otherwise' entry",
        "s.yaml:9:11: states.b.say[0]: an empty list of messages",
        "s.yaml:10:10: states.b.end: the outcome must not be empty",
    ]


def test_every_error_of_a_file_is_reported_in_line_order():
    text = scenario("""
        a:
          say: "{x}"
          expect:
            - otherwise: true
              goto: b
        b:
          expect:
            - keywords: [hi]
              goto: c
        """)
    found = errors(text)
    assert [int(e.split(":")[1]) for e in found] == [6, 12, 13]
    assert [e.split(": ")[1] for e in found] == ["states.a.say", "states.b.expect",
                                                 "states.b.expect[0].goto"]


def test_load_scenario_reads_a_file_and_names_it(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(scenario('a:\n  say: hi\n  end: done\n'), encoding="utf-8")
    m = load_scenario(good)
    assert (m.name, m.version, m.start, sorted(m.nodes)) == ("t", 1, "a", ["a"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(scenario('a:\n  end: done\n  end: again\n'), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert str(info.value) == f"{bad}:7:5: states.a.end: duplicate key 'end'"
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")


def test_yaml_merge_keys_are_refused_clearly():
    text = scenario("""
        a: &base
          end: done
        b:
          <<: *base
          say: hi
        """)
    assert one_error(text) == ("s.yaml:8:5: states.b: YAML merge keys ('<<') are not supported: "
                               "write the fields out, or reuse a whole value with an alias "
                               "(*name)")


def test_unknown_yaml_tags_are_scenario_errors():
    text = scenario("""
        a:
          say: !!python/object:os.system x
          end: done
        """)
    assert one_error(text) == ("s.yaml:6:10: states.a.say: YAML error: could not determine a "
                               "constructor for the tag 'tag:yaml.org,2002:python/object:"
                               "os.system'")


def test_yaml_anchors_and_aliases_share_a_value():
    m = machine("""
        a:
          expect:
            - keywords: &cop [cop, police]
              goto: b
            - otherwise: true
              goto: b
        b:
          expect:
            - keywords: *cop
              goto: z
            - otherwise: true
              goto: z
        z:
          end: done
        """)
    assert m.nodes["a"].expect[0].matcher.words == m.nodes["b"].expect[0].matcher.words == {
        "cop", "police"}


@pytest.mark.parametrize("seconds, text", [(-3, "0s"), (45.9, "45s"), (60, "1m"),
                                           (3599, "59m"), (3600 + 5 * 60, "1h05m"),
                                           (2 * 86400 + 4 * 3600 + 59, "2d4h")])
def test_an_age_reads_in_its_two_largest_units(seconds, text):
    from intercept.engine.durations import format_age

    assert format_age(seconds) == text


def test_a_split_declared_an_experiment_is_known_by_its_name():
    m = compile_text(scenario("""
        a:
          split:
            record: wording
            experiment: opener-2024
            branches:
              - {name: warm, goto: b}
              - {name: brief, goto: c}
        b:
          end: done
        c:
          end: done
        """))
    (name, node), = m.experiments.items()
    assert (name, node.name, node.record) == ("opener-2024", "a", "wording")
    assert [b.name for b in node.split] == ["warm", "brief"]
    assert compile_text(scenario("""
        a:
          split: {record: w, branches: [{goto: b}]}
        b:
          end: done
        """)).experiments == {}


def test_an_experiment_name_is_checked_and_used_by_one_split_only():
    text = scenario("""
        a:
          split: {record: w, experiment: "bad name", branches: [{goto: b}]}
        b:
          split: {record: v, experiment: same, branches: [{goto: c}]}
        c:
          split: {record: u, experiment: same, branches: [{goto: d}]}
        d:
          end: done
        """)
    found = errors(text)
    assert [e.split(": ")[1] for e in found] == ["states.a.split.experiment",
                                                 "states.c.split.experiment"]
    assert "bad experiment name 'bad name'" in found[0]
    assert "experiment 'same' is already the split of state 'b'" in found[1]
