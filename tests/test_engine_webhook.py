"""The webhook action in the engine: compile checks, the `Webhook` effect and its payload,
branching on the `WebhookResult` event (ok, error, field, if), and the variables it sets."""

from __future__ import annotations

import textwrap

import pytest

from intercept.authoring.graph import node_edges
from intercept.engine import (
    ConversationState,
    Machine,
    Message,
    Send,
    Start,
    Transition,
    Webhook,
    WebhookResult,
    compile_text,
)
from intercept.errors import ScenarioError, ScenarioErrors

CONTEXT = {"city.name": "Seattle", "persona.name": "Jasmine"}

SCENARIO = """\
name: wh
version: 1
start: hello
states:
  hello:
    expect:
      - regex: "i'?m (?P<his_name>[a-z]+)"
        goto: ask
      - otherwise: true
        stay: true
  ask:
    set: {when: "9pm"}
    webhook: {call: crm, send: [his_name, when, city.name]}
    say: one sec
    expect:
      - otherwise: true
        say: still checking
        stay: true
    on_webhook:
      - field: meet
        if: {var: crm.meet, equals: "yes"}
        say: "ok see u {when} ({crm.place})"
        goto: done
      - error: timeout
        goto: slow
      - ok: false
        say: "no ({crm.error}, {crm.http_status})"
        goto: done
      - otherwise: true
        say: "hmm {crm.meet}"
        goto: done
  slow:
    end: slow
  done:
    end: done
"""


def machine(text: str = SCENARIO) -> Machine:
    return compile_text(textwrap.dedent(text))


def waiting(m: Machine) -> tuple[ConversationState, list]:
    state = m.new_state(seed=7, context=dict(CONTEXT))
    state, _ = m.step(state, Start(), 0.0)
    return m.step(state, Message("hey i'm mike"), 10.0)


def errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        compile_text(textwrap.dedent(text), file="s.yaml")
    found = info.value.errors if isinstance(info.value, ScenarioErrors) else [info.value]
    return [e.render() for e in found]


def test_entering_the_state_asks_for_the_call_with_the_chosen_variables_only():
    m = machine()
    state, effects = waiting(m)
    calls = [e for e in effects if isinstance(e, Webhook)]
    assert calls == [Webhook("crm", {"his_name": "mike", "when": "9pm",
                                     "city.name": "Seattle"})]
    assert "persona.name" not in calls[0].payload and "message" not in calls[0].payload
    assert state.node == "ask"
    # what the runtime redoes after a restart is the same call
    assert m.pending_webhook(state) == calls[0]
    assert m.pending_webhook(m.new_state(seed=1, context={})) is None


def test_a_variable_not_set_is_sent_empty():
    m = machine(SCENARIO.replace("city.name]", "persona.style]"))
    _, effects = waiting(m)
    (call,) = [e for e in effects if isinstance(e, Webhook)]
    assert call.payload == {"his_name": "mike", "when": "9pm", "persona.style": ""}


def test_a_field_of_the_reply_takes_its_entry_and_becomes_a_variable():
    m = machine()
    state, _ = waiting(m)
    result = WebhookResult("crm", True, 200, fields={"meet": "yes", "place": "the mall"})
    state, effects = m.step(state, result, 20.0)
    assert Send("ok see u 9pm (the mall)") in effects
    assert Transition("ask", "done", "webhook[0]") in effects
    assert state.vars["crm.meet"] == "yes" and state.vars["crm.http_status"] == "200"
    assert "crm.error" not in state.vars


def test_the_if_of_an_entry_is_checked_with_the_fields():
    m = machine()
    state, _ = waiting(m)
    state, effects = m.step(state, WebhookResult("crm", True, 200, fields={"meet": "no"}), 20.0)
    assert Send("hmm no") in effects and Transition("ask", "done", "webhook[3]") in effects


def test_errors_branch_by_kind():
    m = machine()
    state, _ = waiting(m)
    after, effects = m.step(state, WebhookResult("crm", False, 0, "timeout"), 20.0)
    assert Transition("ask", "slow", "webhook[1]") in effects and after.outcome == "slow"
    after, effects = m.step(state, WebhookResult("crm", False, 503, "failed"), 20.0)
    assert Send("no (failed, 503)") in effects
    assert after.vars["crm.error"] == "failed" and after.vars["crm.http_status"] == "503"


def test_an_earlier_answer_s_fields_do_not_linger():
    m = machine(SCENARIO.replace("        goto: done\n      - error: timeout",
                                 "        stay: true\n      - error: timeout", 1)
                .replace("      - otherwise: true\n        say: \"hmm {crm.meet}\"\n"
                         "        goto: done\n", "      - otherwise: true\n        stay: true\n"))
    state, _ = waiting(m)
    state, _ = m.step(state, WebhookResult("crm", True, 200, fields={"meet": "yes",
                                                                      "place": "x"}), 20.0)
    assert state.node == "ask" and state.vars["crm.place"] == "x"
    state, _ = m.step(state, WebhookResult("crm", True, 200, fields={"other": "1"}), 30.0)
    assert "crm.place" not in state.vars and state.vars["crm.other"] == "1"


def test_a_reply_still_gets_answered_while_the_call_is_out():
    m = machine()
    state, _ = waiting(m)
    state, effects = m.step(state, Message("u there?"), 15.0)
    assert Send("still checking") in effects and state.node == "ask"


def test_the_graph_shows_the_answers():
    m = machine()
    labels = {(e.target, e.label) for e in node_edges(m, m.nodes["ask"])}
    assert ("done", "crm has meet") in labels and ("slow", "crm timeout") in labels
    assert ("done", "crm failed") in labels


# -- compile checks


def state_with(extra: str, *, expect: bool = True) -> str:
    waits = "    expect:\n      - otherwise: true\n        stay: true\n" if expect else \
        "    end: done\n"
    return ("name: wh\nversion: 1\nstart: ask\nstates:\n  ask:\n    set: {when: x}\n"
            + textwrap.indent(textwrap.dedent(extra), "    ") + waits
            + "  done:\n    end: done\n")


@pytest.mark.parametrize(("extra", "expect", "words"), [
    ("webhook: {call: crm, send: [when]}\n", False, "must wait for its answer"),
    ("on_webhook:\n  - otherwise: true\n    goto: done\n", True,
     "'on_webhook' needs 'webhook'"),
    ("webhook: {call: crm, send: [when]}\nlookup: number\n", True,
     "a lookup or call a webhook, not both"),
    ("webhook: {call: Crm, send: [when]}\n", True, "bad webhook name 'Crm'"),
    ("webhook: {call: city, send: [when]}\n", True, "cannot be named 'city'"),
    ("webhook: {call: crm, send: [whem]}\n", True, "unknown variable 'whem' (did you mean "
                                                   "'when'?)"),
    ("webhook: {call: crm, send: [when, when]}\n", True, "'when' is sent twice"),
    ("webhook: {call: crm, send: [when]}\non_webhook:\n  - otherwise: true\n    ok: true\n"
     "    goto: done\n", True, "'otherwise' takes every answer"),
    ("webhook: {call: crm, send: [when]}\non_webhook:\n  - ok: true\n    error: timeout\n"
     "    goto: done\n", True, "not ok"),
    ("webhook: {call: crm, send: [when]}\non_webhook:\n  - ok: false\n    field: x\n"
     "    goto: done\n", True, "a failed call has no reply fields"),
    ("webhook: {call: crm, send: [when]}\non_webhook:\n  - error: slow\n    goto: done\n", True,
     "error"),
    ("webhook: {call: crm, send: [when]}\non_webhook:\n  - ok: true\n    goto: nowhere\n", True,
     "unknown state 'nowhere'"),
    ("webhook: {call: crm, send: [when]}\nsay: \"{crm}\"\n", True, "unknown placeholder {crm}"),
])
def test_compile_errors(extra, expect, words):
    found = errors(state_with(extra, expect=expect))
    assert any(words in e for e in found), found
    assert all(e.startswith("s.yaml:") for e in found)


def test_a_reply_with_a_lookup_cannot_go_straight_to_a_webhook_state():
    text = SCENARIO.replace("        goto: ask\n", "        lookup: number\n        goto: ask\n", 1)
    (found,) = errors(text)
    assert "states.hello.expect[0].lookup" in found and "calls a webhook" in found


def test_a_webhook_s_variables_are_known_placeholders():
    m = machine(state_with("webhook: {call: crm, send: [when]}\nsay: \"{crm.anything}\"\n"))
    assert isinstance(m, Machine)


# -- lint


def webhook_lint(text: str) -> list[str]:
    from intercept.authoring.lint import lint_machine

    return [f.message for f in lint_machine(machine(text)) if f.rule == "webhook-failure"]


def test_lint_warns_when_no_entry_takes_a_failed_call():
    only_success = SCENARIO.replace("      - error: timeout\n        goto: slow\n", "").replace(
        "      - ok: false\n", "      - ok: false\n        if: {var: when, equals: never}\n"
    ).replace("      - otherwise: true\n        say: \"hmm {crm.meet}\"\n        goto: done\n",
              "      - ok: true\n        goto: done\n")
    (message,) = webhook_lint(only_success)
    assert "state 'ask' calls webhook 'crm'" in message and "ok: false" in message
    assert webhook_lint(SCENARIO) == []  # 'otherwise' takes failures
    every_error = only_success.replace(
        "      - ok: true\n        goto: done\n",
        "      - ok: true\n        goto: done\n" + "".join(
            f"      - error: {e}\n        goto: slow\n" for e in ("timeout", "failed",
                                                                "refused")))
    assert webhook_lint(every_error) == []
