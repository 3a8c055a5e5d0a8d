"""`intercept.authoring.lint`: dead ends, loops, unreachable states, long messages, STOP."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from intercept.authoring.lint import lint_file, segments_needed

ROOT = Path(__file__).resolve().parent.parent
STOP = """\
globals:
  - name: stop
    keywords: [stop]
    opt_out: "ok"
    return: true
"""


def lint(tmp_path: Path, body: str, *, stop: bool = True, extra: str = "",
         speaks_first: bool = False) -> list[str]:
    """Lint a scenario whose first state is on line 10 (5 without the STOP handler), plus the
    lines of `extra`."""
    text = "name: t\nversion: 1\nstart: a\n" + (STOP if stop else "") + extra
    text += "states:\n" + textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", "  ")
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return [f.render().replace(f"{path}:", "s.yaml:")
            for f in lint_file(path, speaks_first=speaks_first)]


@pytest.mark.parametrize("name", ["buyer-deterrence", "buyer-deterrence-minor",
                                  "victim-outreach"])
def test_the_shipped_scenarios_are_lint_clean(name):
    assert lint_file(ROOT / "scenarios" / f"{name}.yaml") == []


def test_a_clean_scenario_has_no_findings(tmp_path):
    assert lint(tmp_path, """
        a:
          expect:
            - otherwise: true
              goto: b
        b:
          say: hi
          expect:
            - otherwise: true
              goto: z
          timeout: {after: 1h, goto: z}
        z:
          end: done
        """) == []


def test_check_errors_are_lint_errors_with_their_line(tmp_path):
    found = lint(tmp_path, """
        a:
          expect:
            - regex: '(unclosed'
              goto: a
            - otherwise: true
              goto: nowhere
        """)
    assert found == [
        "s.yaml:12:16: error: states.a.expect[0].regex: invalid regular expression: missing ), "
        "unterminated subpattern at position 0",
        "s.yaml:15:15: error: states.a.expect[1].goto: unknown state 'nowhere'",
    ]


def test_a_dead_end_is_an_error_at_its_state(tmp_path):
    found = lint(tmp_path, """
        a:
          expect:
            - keywords: [x]
              goto: b
            - otherwise: true
              goto: z
        b:
          say: "waiting forever"
          expect:
            - otherwise: true
              stay: true
          skip_globals: all
        z:
          end: done
        """)
    assert found == ["s.yaml:17:5: error: states.b: dead end: from 'b' the conversation can "
                     "never finish (no way leads to an 'end', a 'handoff' or the scenario's "
                     "expiry)"]


def test_a_loop_without_an_exit_is_an_error(tmp_path):
    found = lint(tmp_path, """
        a:
          expect:
            - otherwise: true
              goto: b
        b:
          say: "one"
          expect:
            - otherwise: true
              goto: c
          visits: {max: 5, goto: c}
        c:
          say: "two"
          expect:
            - otherwise: true
              goto: b
        """, stop=False)
    assert found == [
        "s.yaml:1:1: warning: no global handler opts the sender out: STOP would not be "
        "honoured (include shared/compliance.yaml, or add a handler with 'opt_out')",
        "s.yaml:10:5: error: states.b: loop without an exit: b -> c -> b never reaches an end, "
        "a hand-off or an expiry, so the conversation could never finish",
    ]


def test_expiry_is_a_way_to_finish(tmp_path):
    found = lint(tmp_path, """
        a:
          expect:
            - otherwise: true
              stay: true
        """, extra="settings:\n  expire: {after: 1d}\n")
    assert found == []


def test_a_hand_off_is_a_way_to_finish(tmp_path):
    assert lint(tmp_path, """
        a:
          expect:
            - otherwise: true
              goto: b
        b:
          handoff: {resume: a}
          visits: {max: 2, goto: z}
        z:
          end: done
        """) == []


def test_unreachable_states_are_warnings(tmp_path):
    found = lint(tmp_path, """
        a:
          end: done
        lonely:
          say: "nobody comes here"
          end: done
        """)
    assert found == ["s.yaml:13:5: warning: states.lonely: unreachable: no path from the start "
                     "state 'a' leads to 'lonely'"]


def test_loops_without_a_visit_limit_are_warnings(tmp_path):
    body = """
        a:
          say: "again?"
          expect:
            - keywords: [yes]
              goto: b
            - otherwise: true
              goto: z
          timeout: {after: 1h, goto: z}
        b:
          say: "ok"
          goto: a
        z:
          end: done
        """
    found = lint(tmp_path, body, speaks_first=True)
    assert found == ["s.yaml:11:5: warning: states.a: loop a -> b -> a has no visit limit: "
                     "someone who keeps replying could keep it going forever; give one of "
                     "these states (or `settings`) 'visits: {max: N, goto: <state>}'"]
    assert lint(tmp_path, body, extra="settings:\n  visits: {max: 3, goto: z}\n",
                speaks_first=True) == []


def test_messages_longer_than_one_sms_are_warnings(tmp_path):
    gsm = "a" * 150 + " {persona.name}"  # 150 + 1 + 10 (the sample name) = 161
    ucs2 = "😊" + "b" * 60 + " {city.name}"  # 2 + 60 + 1 + 13 = 76 UTF-16 units
    found = lint(tmp_path, f"""
        a:
          set: {{later: ""}}
          say: ["{gsm}", "{ucs2}", "{'c' * 155} {{later|soon}}", "{'d' * 70}"]
          end: done
        """)
    assert found == [
        "s.yaml:12:11: warning: states.a.say[0]: message is 161 GSM-7 characters with sample "
        "placeholder values, longer than one SMS (160): it would arrive in parts",
        "s.yaml:12:180: warning: states.a.say[1]: message is 76 UCS-2 characters with sample "
        "placeholder values, longer than one SMS (70) (it has a character outside the GSM "
        "alphabet, such as an emoji or a curly quote, so the limit is 70): it would arrive in "
        "parts",
    ]


def test_segment_sizes():
    assert segments_needed("hello") == ("GSM-7", 5, 160)
    assert segments_needed("{€}") == ("GSM-7", 6, 160)  # extension characters count two
    assert segments_needed("hi 😊") == ("UCS-2", 5, 70)  # an emoji is a surrogate pair
    assert segments_needed("it’s") == ("UCS-2", 4, 70)  # a curly quote is not GSM


def test_a_scenario_without_a_stop_handler_gets_a_warning(tmp_path):
    found = lint(tmp_path, "a:\n  end: done\n", stop=False)
    assert found == ["s.yaml:1:1: warning: no global handler opts the sender out: STOP would "
                     "not be honoured (include shared/compliance.yaml, or add a handler with "
                     "'opt_out')"]


def test_an_urgent_hand_off_that_says_nothing_is_a_warning(tmp_path):
    found = lint(tmp_path, """
        a:
          expect:
            - otherwise: true
              goto: b
        b:
          handoff: {resume: a, priority: urgent}
          visits: {max: 2, goto: z}
        z:
          end: done
        """)
    assert found == ["s.yaml:15:5: warning: states.b: urgent hand-off 'b' says nothing: the "
                     "person hears nothing until an advocate answers; give it a 'say' (e.g. "
                     "whom to call in an emergency)"]


def test_an_unknown_hand_off_priority_is_an_error_at_its_line(tmp_path):
    found = lint(tmp_path, """
        a:
          say: hi
          handoff: {resume: a, priority: soon}
        """)
    assert len(found) == 1 and found[0].startswith("s.yaml:12:")
    assert "error: states.a.handoff.priority: invalid enum value 'soon'" in found[0]


def test_an_experiment_that_cannot_compare_anything_is_a_warning(tmp_path):
    found = lint(tmp_path, """
        a:
          split:
            record: wording
            experiment: opener
            branches:
              - {name: x, goto: z}
              - {name: y, goto: z}
        z:
          end: done
        """)
    assert found == ["s.yaml:11:5: warning: states.a: experiment 'opener' has branches that "
                     "all go to the same state: they cannot differ"]
    assert lint(tmp_path, """
        a:
          split:
            record: wording
            experiment: opener
            branches:
              - {name: x, goto: y}
              - {name: y, goto: z}
        y:
          end: done
        z:
          end: done
        """) == []


GREETING = "s.yaml:11:5: warning: states.a: the start state 'a' says something and then waits"


def test_a_greeting_in_the_start_state_of_a_scenario_that_waits_for_the_first_text_warns(
        tmp_path):
    greets = """
        a:
          say: "hey who's this?"
          expect:
            - keywords: [mike]
              goto: z
            - otherwise: true
              goto: z
        z:
          end: done
        """
    found = lint(tmp_path, greets)
    assert len(found) == 1 and found[0].startswith(GREETING)
    assert "leave the start state silent" in found[0] and "'- otherwise: true'" in found[0]
    assert lint(tmp_path, greets, speaks_first=True) == []  # a campaign's opening
    silent = """
        a:
          expect:
            - otherwise: true
              goto: b
        b:
          say: "hey who's this?"
          expect:
            - otherwise: true
              goto: z
        z:
          end: done
        """
    assert lint(tmp_path, silent) == []
