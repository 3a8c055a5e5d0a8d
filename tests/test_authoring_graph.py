"""State diagrams (Mermaid, DOT) and the graph queries behind lint, from the compiled table."""

from __future__ import annotations

from pathlib import Path

from intercept.authoring.graph import (
    BACK,
    EXPIRED,
    can_finish,
    describe,
    dot,
    edges,
    mermaid,
    reachable,
    successors,
)
from intercept.engine import compile_text, load_scenario

ROOT = Path(__file__).resolve().parent.parent

SCENARIO = """
name: g
version: 1
start: pick
settings:
  expire: {after: 2d}
intents:
  price: [price, how much]
globals:
  - name: help
    keywords: [help]
    say: "help text"
    return: true
  - name: stop
    keywords: [stop]
    opt_out: "bye"
    goto: out
states:
  pick:
    split:
      record: ab
      branches:
        - {name: left, weight: 3, goto: a}
        - {goto: b}
  a:
    say: "a"
    expect:
      - intent: price
        goto: check
      - number: {min: 10, max: 20}
        goto: check
      - has: media
        goto: person
      - otherwise: true
        goto: b
    timeout: {after: 40m, goto: b}
  b:
    say: "b"
    goto: a
    visits: {max: 2, goto: done}
  check:
    if: {var: persona.age, lt: 18}
    then: done
    else: a
  person:
    handoff: {resume: a}
  out:
    skip_globals: all
    expect:
      - keywords: [start]
        opt_in: "back"
        return: true
      - otherwise: true
        stay: true
  done:
    end: finished
"""
MACHINE = compile_text(SCENARIO)


def test_edges_come_from_the_table():
    found = {(e.source, e.target, e.label, e.kind) for e in edges(MACHINE, with_globals=False)}
    assert ("pick", "a", "left 75%", "split") in found
    assert ("pick", "b", "b 25%", "split") in found
    assert ("a", "check", "price", "reply") in found
    assert ("a", "check", "number 10–20", "reply") in found
    assert ("a", "person", "has media", "reply") in found
    assert ("a", "b", "no reply 40m", "timeout") in found
    assert ("a", EXPIRED, "silent 2d", "expire") in found
    assert ("b", "done", "after 2 visits", "visits") in found
    assert ("check", "done", "persona.age < 18", "then") in found
    assert ("check", "a", "not persona.age < 18", "else") in found
    assert ("person", "a", "resumed", "resume") in found


def test_globals_are_edges_of_every_waiting_state_unless_skipped():
    from_a = {(e.target, e.label) for e in edges(MACHINE) if e.source == "a"}
    assert ("out", "stop") in from_a
    assert not [e for e in edges(MACHINE) if e.source == "out" and e.kind == "global"]
    # while handed off, only opt-out and opt-in handlers run
    assert {e.label for e in edges(MACHINE) if e.source == "person" and e.kind == "global"} \
        == {"stop"}


def test_reachability_and_finishing():
    assert reachable(MACHINE) == set(MACHINE.nodes)
    assert can_finish(MACHINE) == set(MACHINE.nodes)
    assert successors(MACHINE)["out"] >= {"a", "out"}  # return goes back to "a"


def test_mermaid():
    text = mermaid(MACHINE)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    ids = {name: f"s{i}" for i, name in enumerate(MACHINE.nodes)}
    assert f"  start((start)) --> {ids['pick']}" in lines
    assert f'  {ids["check"]}{{"check"}}' in lines
    assert f'  {ids["pick"]}{{{{"pick"}}}}' in lines
    assert f'  {ids["done"]}(["done → finished"])' in lines
    assert f'  {ids["person"]}[["person → person"]]' in lines
    assert f'  {ids["a"]} -->|"price"| {ids["check"]}' in lines
    assert f'  {ids["a"]} -.->|"no reply 40m"| {ids["b"]}' in lines
    assert '  anywhere -.->|"help"| back' in lines
    assert f'  anywhere -.->|"stop"| {ids["out"]}' in lines
    assert '  anywhere -.->|"silent 2d"| expired' in lines
    assert f'  {ids["out"]} -->|"start"| back' in lines
    assert f'  {ids["out"]} -->|"otherwise"| {ids["out"]}' in lines
    assert sum("stop" in line for line in lines) == 1  # a global handler is drawn once


def test_dot():
    text = dot(MACHINE)
    assert text.startswith('digraph "g" {\n')
    assert '  "check" [shape=diamond, label="check"];' in text
    assert '  "done" [shape=doubleoctagon, label="done\\n→ finished"];' in text
    assert '  "a" -> "check" [label="price"];' in text
    assert '  "a" -> "b" [label="no reply 40m", style=dashed];' in text
    assert f'  "(anywhere)" -> "{BACK}" [label="help", style=dashed];' in text
    assert text.rstrip().endswith("}")


def test_matcher_labels():
    labels = [describe(e.matcher) for e in load_scenario(
        ROOT / "scenarios" / "victim-outreach.yaml").nodes["listen"].expect]
    assert labels == ["yes", "spanish_yes", "hostile", "no", "spanish_no", "police", "who", "cost",
                      "services", "otherwise"]
    m = compile_text("""
name: l
version: 1
start: a
states:
  a:
    expect:
      - keywords: [b, a, c d]
        goto: z
      - all: [x, y]
        goto: z
      - fuzzy: [how much]
        goto: z
      - regex: '(?P<when>\\d+)pm'
        goto: z
      - number: true
        goto: z
      - otherwise: true
        goto: z
  z:
    end: x
""")
    assert [describe(e.matcher) for e in m.nodes["a"].expect] == [
        "a, b…", "all: x, y", "~how much", "regex (when)", "a number", "otherwise"]


def test_an_urgent_hand_off_is_marked_in_both_drawings(tmp_path):
    from intercept.authoring.graph import dot, mermaid
    from intercept.engine import load_scenario

    path = tmp_path / "u.yaml"
    path.write_text("name: u\nversion: 1\nstart: a\nstates:\n  a:\n    say: call 911\n"
                    "    handoff: {resume: b, priority: urgent}\n  b:\n    end: done\n",
                    encoding="utf-8")
    machine = load_scenario(path)
    assert '[["a → person, urgent"]]' in mermaid(machine)
    assert 'label="a\\n(urgent)"' in dot(machine)


def test_an_if_is_labelled_with_its_condition_not_then_and_else():
    from intercept.authoring.graph import describe_conditions
    from intercept.engine.match import Condition

    both = (Condition("city.name", equals="seattle"), Condition("persona.age", ge=18, lt=21))
    assert describe_conditions((Condition("price", exists=False),)) == "price not set"
    assert describe_conditions((Condition("day", in_=("sat", "sun")),)) == "day in sat, sun"
    assert describe_conditions((Condition("x", not_equals="y"),)) == "x ≠ y"
    text = describe_conditions(both, limit=200)
    assert text == "city.name = seattle and persona.age < 21 and persona.age ≥ 18"
    assert len(describe_conditions(both, limit=20)) == 20
