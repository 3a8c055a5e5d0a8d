"""The layered layout the console draws a scenario's state diagram with."""

from __future__ import annotations

import random
from pathlib import Path

from intercept.authoring.graph import edges
from intercept.authoring.layout import ROW_LIMIT, box_width, layers, layout, overlapping
from intercept.engine.machine import STAY
from intercept.scenarios import ScenarioRegistry

ROOT = Path(__file__).resolve().parent.parent


def test_layers_are_the_shortest_distance_from_the_start():
    names = ["a", "b", "c", "d", "lost"]
    links = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("d", "a"), ("d", "d"),
             ("lost", "a")]
    assert layers(names, "a", links) == {"a": 0, "b": 1, "c": 1, "d": 2, "lost": 3}
    # links to names that are not states are ignored; a missing start leaves one layer
    assert layers(["a", "b"], "a", [("a", "(end)"), ("a", "b")]) == {"a": 0, "b": 1}
    assert layers(["a", "b"], "zzz", [("a", "b")]) == {"a": 0, "b": 0}


def test_a_layer_is_ordered_by_its_parents_positions():
    # x is left of y, so x's child q goes left of y's child p, whatever the names' order
    names = ["a", "x", "y", "p", "q"]
    placed = layout(names, "a", [("a", "x"), ("a", "y"), ("x", "q"), ("y", "p")])
    box = placed.boxes
    assert box["x"].x < box["y"].x and box["q"].x < box["p"].x
    assert box["a"].layer == 0 and box["p"].layer == box["q"].layer == 2
    assert box["a"].y < box["x"].y < box["p"].y


def test_boxes_fit_their_text_and_back_edges_are_marked():
    placed = layout(["start", "a_much_longer_state_name"], "start",
                    [("start", "a_much_longer_state_name"), ("a_much_longer_state_name", "start"),
                     ("start", "start")],
                    texts={"start": ("start", "12345 reached")})
    box = placed.boxes
    assert box["a_much_longer_state_name"].width == box_width("a_much_longer_state_name")
    assert box["start"].width == box_width("12345 reached") > box_width("start")
    back = {(p.source, p.target): p.back for p in placed.paths}
    assert back == {("start", "a_much_longer_state_name"): False,
                    ("a_much_longer_state_name", "start"): True, ("start", "start"): True}
    for p in placed.paths:
        assert p.d.startswith("M") and set(p.d) <= set("MLC0123456789., -")
        assert 0 <= p.label_x <= placed.width and 0 <= p.label_y <= placed.height
    for b in box.values():
        assert b.x >= 0 and b.right <= placed.width and b.y >= 0 and b.bottom <= placed.height


def test_no_two_boxes_overlap_in_the_shipped_scenarios_or_a_random_graph():
    registry = ScenarioRegistry.from_dir(ROOT / "scenarios")
    for name in registry.names():
        machine = registry.current(name)
        assert machine is not None
        links = sorted({(e.source, e.source if e.target == STAY else e.target)
                        for e in edges(machine, with_globals=False)})
        placed = layout(list(machine.nodes), machine.start, links)
        assert set(placed.boxes) == set(machine.nodes)
        assert overlapping(list(placed.boxes.values())) == [], name
        assert placed.boxes[machine.start].layer == 0
    rng = random.Random(7)
    names = [f"state_{i}" + "x" * rng.randrange(20) for i in range(80)]
    links = [(rng.choice(names), rng.choice(names)) for _ in range(200)]
    placed = layout(names, names[0], links)
    assert overlapping(list(placed.boxes.values())) == []
    assert len(placed.paths) == len(links)


def test_overlapping_finds_overlaps():
    placed = layout(["a", "b"], "a", [("a", "b")])
    a, b = placed.boxes["a"], placed.boxes["b"]
    assert overlapping([a, b]) == []
    moved = type(b)(b.name, b.layer, a.x + 5, a.y + 5, b.width, b.height)
    assert overlapping([a, moved]) == [("a", "b")]


def test_a_wide_layer_is_wrapped_onto_rows():
    children = [f"child_{i}" for i in range(2 * ROW_LIMIT + 1)]
    links = [("hub", c) for c in children] + [(children[-1], children[0]), (children[0], "hub")]
    placed = layout(["hub", *children], "hub", links)
    box = placed.boxes
    assert {box[c].layer for c in children} == {1}
    assert sorted({box[c].row for c in children}) == [1, 2, 3]
    assert overlapping(list(box.values())) == []
    assert placed.width < (ROW_LIMIT + 1) * (box_width(children[0]) + 30) + 100
    back = {(p.source, p.target): p.back for p in placed.paths}
    assert back[(children[-1], children[0])] and back[(children[0], "hub")]
    assert not back[("hub", children[-1])]
