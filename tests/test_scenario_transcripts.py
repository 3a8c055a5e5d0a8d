"""The shipped scenarios' transcript tests (scenarios/tests/*.yaml), run from pytest, and the
transcript runner itself: merging, timers, lookups, resumes, failures and their reports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from intercept.authoring.transcripts import load_suite, report, run_suite, run_test
from intercept.config import OptOutConfig
from intercept.errors import ScenarioError

from helpers import ECHO, OUR, running

ROOT = Path(__file__).resolve().parent.parent
TEST_FILES = sorted((ROOT / "scenarios" / "tests").glob("*.yaml"))
SUITES = {path.name: load_suite(path) for path in TEST_FILES}


def test_every_shipped_scenario_has_a_transcript_file():
    tested = {Path(s.machine.info.file).name for s in SUITES.values()}
    shipped = {p.name for p in (ROOT / "scenarios").glob("*.yaml")}
    assert tested == shipped


def _cases():
    for name, suite in SUITES.items():
        for test in suite.tests:
            yield pytest.param(name, test, id=f"{name}::{test.name}")


@pytest.mark.parametrize(("file", "test"), list(_cases()))
def test_transcript(file, test):
    suite = SUITES[file]
    for seed in test.seeds:
        result = run_test(suite, test, seed)
        assert result.ok, "\n" + report(result, suite.path)


@pytest.mark.parametrize("file", list(SUITES))
def test_the_transcripts_visit_every_state(file):
    outcome = run_suite(SUITES[file])
    assert outcome.ok
    assert outcome.unvisited == [], f"{file} never visits {outcome.unvisited}"


# ---------------------------------------------------------------------------------------------
# The runner


SCENARIO = """\
name: runner
version: 1
start: wait
settings:
  merge: 10s
  expire: {after: 1d}
globals:
  - name: stop
    keywords: [stop]
    opt_out: "bye"
    goto: out
states:
  wait:
    expect:
      - keywords: [person]
        goto: person
      - keywords: [look]
        goto: looking
      - regex: '(?P<n>\\d+)'
        tag: number
        goto: got
      - otherwise: true
        say: "you said: {message}"
        stay: true
    timeout: {after: 1h, goto: nudge}
  nudge:
    say: "still there?"
    expect:
      - otherwise: true
        goto: wait
  got:
    say: [["got {n}", "thanks"]]
    end: done
  person:
    say: "a person will answer"
    handoff: {resume: wait}
  looking:
    lookup: caller_name
    expect:
      - otherwise: true
        goto: wait
    on_lookup:
      - ok: true
        say: "hi {caller_name.name}"
        goto: wait
      - otherwise: true
        stay: true
  out:
    expect:
      - otherwise: true
        stay: true
"""


def suite_from(tmp_path: Path, tests: str):
    (tmp_path / "runner.yaml").write_text(SCENARIO, encoding="utf-8")
    path = tmp_path / "t.yaml"
    path.write_text("scenario: runner.yaml\n" + textwrap.dedent(tests), encoding="utf-8")
    return load_suite(path)


def run(tmp_path: Path, tests: str):
    suite = suite_from(tmp_path, tests)
    return suite, run_suite(suite).results


def test_fragments_within_the_merge_window_are_one_message(tmp_path):
    _, results = run(tmp_path, """
        tests:
          - name: merged
            steps:
              - them: hi
              - them: there
                after: 4s
              - them: you
                after: 9s
                bot: "you said: hi\\nthere\\nyou"
              - them: again
                after: 11s
                bot: "you said: again"
        """)
    assert results[0].ok, report(results[0], "t")


def test_a_fragment_after_the_window_is_a_new_message(tmp_path):
    _, results = run(tmp_path, """
        tests:
          - name: apart
            strict: true
            steps:
              - them: one
              - them: two
                after: 30s
        """)
    assert not results[0].ok
    assert "the bot said more than the test expects:\n      you said: one" in results[0].message
    _, results = run(tmp_path, """
        tests:
          - name: apart
            strict: true
            steps:
              - them: one
                bot: "you said: one"
              - them: two
                after: 30s
                bot: "you said: two"
        """)
    assert results[0].ok, report(results[0], "t")


def test_waits_fire_timers_when_they_are_due(tmp_path):
    _, results = run(tmp_path, """
        tests:
          - name: timers
            steps:
              - wait: 59m
                state: wait
                bot: []
              - wait: +1m
                state: nudge
                bot: still there?
              - them: back
                state: wait
              - wait: timer
                state: nudge
              - wait: 1d
                outcome: expired
        """)
    assert results[0].ok, report(results[0], "t")


def test_vars_tags_effects_outcome_and_seeds(tmp_path):
    _, results = run(tmp_path, """
        seed: 5
        tests:
          - name: captures
            seeds: [1, 2]
            steps:
              - them: my number is 42
                vars: {n: "42", message: /number/, missing: null}
                tags: [number]
                effects: [capture, tag, end]
                outcome: done
                bot: [got 42, thanks]
        """)
    assert [(r.ok, r.seed) for r in results] == [(True, 1), (True, 2)]


def test_hand_off_resume_and_lookups(tmp_path):
    _, results = run(tmp_path, """
        tests:
          - name: person
            steps:
              - them: a person please
                paused: true
                effects: [hand_off]
              - them: hello?
                bot: []
              - resume: true
                state: wait
                paused: false
          - name: lookup
            steps:
              - them: look
                effects: [lookup]
              - lookup: {kind: caller_name, ok: true, data: {name: Sam}}
                bot: hi Sam
                vars: {caller_name.name: Sam}
                state: wait
          - name: stop
            steps:
              - them: stop
                effects: [opt_out]
                state: out
        """)
    assert all(r.ok for r in results), [report(r, "t") for r in results if not r.ok]


def test_a_failure_says_where_what_and_shows_the_conversation(tmp_path):
    suite, results = run(tmp_path, """
        tests:
          - name: wrong
            steps:
              - them: hello
                bot: hi there
        """)
    (result,) = results
    assert not result.ok
    text = report(result, suite.path)
    lines = text.splitlines()
    assert lines[0] == f"FAIL {suite.path}:7: wrong"
    assert "expected the bot to say" in text and "      hi there" in text
    assert "      you said: hello" in text
    assert "  them: hello" in text and "conversation so far:" in text


@pytest.mark.parametrize(("steps", "message"), [
    ("- them: hi\n  bot: /nope/", "but it said"),
    ("- them: hi\n  state: nudge", "expected state 'nudge', but the conversation is in "
                                    "'wait'"),
    ("- them: hi\n  vars: {message: bye}", "expected message = 'bye', got 'hi'"),
    ("- them: hi\n  tags: [x]", "expected tag(s) 'x'; the conversation has none"),
    ("- them: hi\n  outcome: done", "expected outcome 'done', got None"),
    ("- them: hi\n  effects: [end]", "expected effect(s) end from the last event"),
    ("- them: hi\n  paused: true", "expected paused: True, got False"),
    ("- them: hi\n  bot: []", "expected the bot to say nothing"),
    ("- them: hi\n  bot: [/said/, more]", "but it said nothing more"),
    ("- them: hi\n  handoff: normal", "expected an normal hand-off from the last event; "
                                       "there was none"),
    ("- them: person\n  handoff: urgent", "expected an urgent hand-off, but it was normal"),
])
def test_each_check_can_fail(tmp_path, steps, message):
    _, results = run(tmp_path, "tests:\n  - name: t\n    steps:\n      "
                     + steps.replace("\n", "\n      ") + "\n")
    assert not results[0].ok
    assert message in results[0].message


def test_strict_tests_must_expect_every_line(tmp_path):
    _, results = run(tmp_path, """
        tests:
          - name: strict
            strict: true
            steps:
              - them: hi
              - them: there
                after: 1m
        """)
    assert "the bot said more than the test expects" in results[0].message


@pytest.mark.parametrize(("tests", "message"), [
    ("tests:\n  - name: t\n    steps:\n      - tehm: hi\n", "unknown step 'tehm'"),
    ("tests:\n  - name: t\n    steps:\n      - them: hi\n        wait: 1h\n",
     "give one of them, wait, lookup, webhook or resume per step"),
    ("tests:\n  - name: t\n    steps:\n      - state: nowhere\n",
     "the scenario has no state 'nowhere'"),
    ("tests:\n  - name: t\n    steps:\n      - wait: soon\n", "or 'timer' for the next timer"),
    ("tests:\n  - name: t\n    steps:\n      - bot: /(/\n", "invalid regular expression"),
    ("tests:\n  - name: t\n    steps:\n      - them: hi\n        media: x\n",
     "media must be a list"),
    ("tests:\n  - name: t\n    stepz: []\n", "unknown field 'stepz'"),
    ("tests:\n  - name: t\n    steps:\n      - them: person\n        handoff: soon\n",
     "handoff is the priority the last event's hand-off has: normal or urgent"),
])
def test_bad_test_files_are_located(tmp_path, tests, message):
    with pytest.raises(ScenarioError) as info:
        suite_from(tmp_path, tests)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{tmp_path / 't.yaml'}:")


def test_a_test_file_naming_a_broken_scenario(tmp_path):
    (tmp_path / "t.yaml").write_text("scenario: missing.yaml\ntests: []\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"the scenario does not compile: .*cannot read"):
        load_suite(tmp_path / "t.yaml")


# ---------------------------------------------------------------------------------------------
# Languages: the persona's language, a city's per-language values, the `language` check


BILINGUAL = """\
name: bilingual
version: 1
languages: [en, es]
start: wait
intents:
  hello:
    en: [hi]
    es: [hola]
states:
  wait:
    expect:
      - intent: hello
        say: {en: "see {city.name}: {city.link}", es: "mira {city.name}: {city.link}"}
        stay: true
      - keywords: [espanol]
        set: {language: es}
        stay: true
      - otherwise: true
        stay: true
"""

CITY = """
    context:
      city:
        name: New York
        link: "https://help.example.org/ny"
        deterrence: "Stop now."
        languages:
          es: {name: Nueva York, link: "https://help.example.org/ny/es", deterrence: "Pare ya."}
"""


def bilingual_suite(tmp_path: Path, tests: str):
    (tmp_path / "bilingual.yaml").write_text(BILINGUAL, encoding="utf-8")
    path = tmp_path / "t.yaml"
    path.write_text("scenario: bilingual.yaml\n" + textwrap.dedent(CITY)
                    + textwrap.dedent(tests), encoding="utf-8")
    return load_suite(path)


def test_the_context_gives_the_persona_language_and_the_citys_values_per_language(tmp_path):
    suite = bilingual_suite(tmp_path, """
        tests:
          - name: t
            context:
              persona: {name: Sofia, language: es}
            steps: []
        """)
    context = suite.tests[0].context
    assert context["persona.language"] == "es"
    assert (context["city.name"], context["city.name@es"]) == ("New York", "Nueva York")
    assert context["city.link@es"] == "https://help.example.org/ny/es"
    assert (context["city.deterrence"], context["city.deterrence@es"]) == ("Stop now.",
                                                                          "Pare ya.")
    plain = bilingual_suite(tmp_path, "tests:\n  - name: t\n    steps: []\n")
    assert "persona.language" not in plain.tests[0].context


def test_a_spanish_persona_is_answered_in_spanish_with_the_spanish_link(tmp_path):
    suite = bilingual_suite(tmp_path, """
        tests:
          - name: es
            context:
              persona: {name: Sofia, language: es}
            steps:
              - language: es
              - them: hola
                bot: "mira Nueva York: https://help.example.org/ny/es"
          - name: en, then set to es
            steps:
              - them: hi
                language: en
                bot: "see New York: https://help.example.org/ny"
              - them: espanol
                language: es
              - them: hola
                bot: "mira Nueva York: https://help.example.org/ny/es"
        """)
    results = run_suite(suite).results
    assert [r.ok for r in results] == [True, True], [r.message for r in results]


def test_the_language_check_can_fail(tmp_path):
    suite = bilingual_suite(tmp_path, """
        tests:
          - name: t
            context:
              persona: {name: Sofia, language: es}
            steps:
              - them: hola
                language: en
        """)
    (result,) = run_suite(suite).results
    assert not result.ok
    assert result.message == "expected the conversation in 'en', but it is in 'es'"


@pytest.mark.parametrize(("tests", "message"), [
    ("tests:\n  - name: t\n    steps:\n      - language: fr\n",
     "the scenario speaks en, es: language is one of them, not 'fr'"),
    ("tests:\n  - name: t\n    context:\n      persona: {language: Spanish}\n"
     "    steps: []\n", "persona.language"),
    ("tests:\n  - name: t\n    context:\n      city: {languages: {es: {lnk: x}}}\n"
     "    steps: []\n", "unknown field 'lnk'"),
])
def test_bad_language_steps_and_contexts_are_located(tmp_path, tests, message):
    with pytest.raises(ScenarioError) as info:
        bilingual_suite(tmp_path, tests)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{tmp_path / 't.yaml'}:")


# ---------------------------------------------------------------------------------------------
# The transcript is production's turn


STOP_PLS = """
    scenario: echo.yaml
    strict: true
    tests:
      - name: stop pls
        steps:
          - them: hi
            bot: "re: hi"
          - them: stop pls
            effects: [opt_out]
            state: wait
            bot: ["{confirmation}"]
          - them: STOP
            bot: []
    """


async def test_a_transcript_of_stop_pls_shows_what_production_sends(tmp_path, autojump_clock):
    """The echo scenario knows nothing of STOP: the runtime's override answers "stop pls" with
    its one confirmation, and drops the scenario's "re: stop pls", in a transcript as on the
    wire (the runner used to step the engine alone and show the echo)."""
    confirmation = OptOutConfig().confirmation
    (tmp_path / "echo.yaml").write_text(ECHO, encoding="utf-8")
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(STOP_PLS).replace("{confirmation}", confirmation),
                    encoding="utf-8")
    suite = load_suite(path)
    (result,) = run_suite(suite).results
    assert result.ok, report(result, "t.yaml")
    said = [line.removeprefix("   bot: ") for line in result.log if line.startswith("   bot: ")]
    assert said == ["re: hi", confirmation]

    async with running(tmp_path) as (server, phones):
        for text in ("hi", "stop pls", "STOP"):
            ingested = await server.gateway.inject(their_number="+12065550199",
                                                   our_number=OUR, text=text)
            await server.settled(ingested.conversation_id, ingested.conv_seq)
        assert phones.by_number["+12065550199"] == said
