"""A layered layout of a scenario's state diagram, for drawing it as SVG on the server.

Pure geometry: states go in layers by their distance from the start state (breadth first over
the edges), are ordered in each layer by the mean position of their parents (a single pass, to
uncross a few edges), and get boxes wide enough for their text; a wide layer is wrapped onto
several rows. Edges are straight lines from one row down to a later one, spread along the
boxes' sides; an edge up to an earlier row is a curve from the top of its box, one within a row
an arc above it, and an edge from a state to itself a small loop. An edge to the same or an
earlier layer is marked `back`, for the drawing to tell apart.

Nothing here formats text for SVG: the template escapes every name and label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BOX_HEIGHT = 40
CHAR_WIDTH = 7.5  # an average glyph at the diagram's 13px font
BOX_PADDING = 20
MIN_WIDTH = 70
GAP_X = 30
GAP_Y = 56
MARGIN = 20
TOP = 36  # room above the first layer for the start marker
BACK_ROOM = 40  # room right of the widest layer for self-loops and bowed back edges
ROW_LIMIT = 8
"""Boxes per row: a wider layer is drawn on several rows."""


@dataclass(frozen=True, slots=True)
class Box:
    name: str
    layer: int
    x: float
    y: float
    width: float
    height: float
    row: int = 0
    """The row it is drawn on (a layer with more than `ROW_LIMIT` states takes several)."""

    @property
    def cx(self) -> float:
        return self.x + self.width / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def right(self) -> float:
        return self.x + self.width


@dataclass(frozen=True, slots=True)
class Path:
    source: str
    target: str
    d: str
    """The SVG path data (numbers only)."""
    label_x: float
    label_y: float
    back: bool
    """To the same or an earlier layer (a self-loop included)."""


@dataclass(frozen=True, slots=True)
class Layout:
    width: float
    height: float
    boxes: dict[str, Box]
    paths: list[Path]


def layers(names: Sequence[str], start: str, links: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each state's distance from `start` (breadth first); states it cannot reach go in one
    layer after the last."""
    known = set(names)
    out: dict[str, list[str]] = {n: [] for n in names}
    for source, target in links:
        if source in known and target in known:
            out[source].append(target)
    layer = {start: 0} if start in known else {}
    frontier = list(layer)
    while frontier:
        nxt: list[str] = []
        for name in frontier:
            for target in out[name]:
                if target not in layer:
                    layer[target] = layer[name] + 1
                    nxt.append(target)
        frontier = nxt
    last = max(layer.values(), default=-1) + 1
    return {n: layer.get(n, last) for n in names}


def box_width(*texts: str) -> float:
    return max(MIN_WIDTH, max((len(t) for t in texts), default=0) * CHAR_WIDTH + BOX_PADDING)


def _order(names: Sequence[str], layer: dict[str, int],
           links: Sequence[tuple[str, str]]) -> list[list[str]]:
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for name in names:
        rows[layer[name]].append(name)
    parents: dict[str, list[str]] = {n: [] for n in names}
    for source, target in links:
        if source in layer and target in layer and layer[source] < layer[target]:
            parents[target].append(source)
    position: dict[str, float] = {}
    for row in rows:
        def key(item: tuple[int, str]) -> tuple[float, int]:
            index, name = item
            seen = [position[p] for p in parents[name] if p in position]
            return (sum(seen) / len(seen) if seen else index, index)
        row[:] = [name for _, name in sorted(enumerate(row), key=key)]
        for i, name in enumerate(row):
            position[name] = i - (len(row) - 1) / 2  # centred, as the row is drawn
    return rows


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def layout(names: Sequence[str], start: str, links: Sequence[tuple[str, str]],
           texts: dict[str, Sequence[str]] | None = None) -> Layout:
    """Place `names` (states) and route `links` ((source, target) pairs between them).

    `texts` gives the lines each box shows (its width follows the longest); the name by
    default."""
    layer = layers(names, start, links)
    rows = [row[i:i + ROW_LIMIT] for row in _order(names, layer, links)
            for i in range(0, max(len(row), 1), ROW_LIMIT)]
    widths = {n: box_width(*(texts or {}).get(n, (n,))) for n in names}
    row_widths = [sum(widths[n] for n in row) + GAP_X * max(len(row) - 1, 0) for row in rows]
    inner = max(row_widths, default=0)
    boxes: dict[str, Box] = {}
    for i, row in enumerate(rows):
        x = MARGIN + (inner - row_widths[i]) / 2
        y = TOP + i * (BOX_HEIGHT + GAP_Y)
        for name in row:
            boxes[name] = Box(name, layer[name], x, y, widths[name], BOX_HEIGHT, i)
            x += widths[name] + GAP_X
    # Ports: the edges leaving (entering) a box's bottom (top) are spread along it, ordered by
    # where their other end is, so fanned-out edges and their counts do not sit on one another.
    # A back edge takes the port right of a forward edge to the same place: it bows right.
    down: dict[str, list[tuple[float, bool, str, str]]] = {n: [] for n in names}
    up: dict[str, list[tuple[float, bool, str, str]]] = {n: [] for n in names}
    for source, target in links:
        a, b = boxes.get(source), boxes.get(target)
        if a is None or b is None or source == target:
            continue
        if b.row > a.row:
            down[source].append((b.cx, False, source, target))
            up[target].append((a.cx, False, source, target))
        else:  # leaves the top of the source, enters the bottom (or top) of the target
            up[source].append((b.cx, True, source, target))
            down[target].append((a.cx, True, source, target))
    port: dict[tuple[str, str, str], float] = {}
    for side, table in (("down", down), ("up", up)):
        for name, items in table.items():
            box = boxes[name]
            items.sort()
            for i, (_, _, source, target) in enumerate(items):
                port[(side, source, target)] = box.x + box.width * (i + 1) / (len(items) + 1)
    paths: list[Path] = []
    for source, target in links:
        a, b = boxes.get(source), boxes.get(target)
        if a is None or b is None:
            continue
        if source == target:
            x0, y0 = a.right, a.y + a.height * 0.3
            y1 = a.y + a.height * 0.7
            d = (f"M{_num(x0)},{_num(y0)} C{_num(x0 + 28)},{_num(y0 - 12)} "
                 f"{_num(x0 + 28)},{_num(y1 + 12)} {_num(x0)},{_num(y1)}")
            paths.append(Path(source, target, d, x0 + 24, a.y + a.height / 2 + 4, True))
        elif b.row > a.row:
            x0, y0 = port[("down", source, target)], a.bottom
            x1, y1 = port[("up", source, target)], b.y
            d = f"M{_num(x0)},{_num(y0)} L{_num(x1)},{_num(y1)}"
            t = 0.5 if b.row - a.row == 1 else 0.5 / (b.row - a.row)
            paths.append(Path(source, target, d, x0 + (x1 - x0) * t + 3,
                              y0 + (y1 - y0) * t + 4, b.layer <= a.layer))
        elif b.row == a.row:  # an arc above the row
            x0, y0 = port[("up", source, target)], a.y
            x1, y1 = port[("down", source, target)], b.y
            lift = GAP_Y * 0.7
            d = (f"M{_num(x0)},{_num(y0)} C{_num(x0)},{_num(y0 - lift)} "
                 f"{_num(x1)},{_num(y1 - lift)} {_num(x1)},{_num(y1)}")
            paths.append(Path(source, target, d, (x0 + x1) / 2, y0 - lift * 0.75 + 4,
                              b.layer <= a.layer))
        else:  # up to an earlier layer, bowed to the right of the straight line
            x0, y0 = port[("up", source, target)], a.y
            x1, y1 = port[("down", source, target)], b.bottom
            bow = 24.0
            d = (f"M{_num(x0)},{_num(y0)} C{_num(x0 + bow)},{_num(y0 - GAP_Y / 2)} "
                 f"{_num(x1 + bow)},{_num(y1 + GAP_Y / 2)} {_num(x1)},{_num(y1)}")
            paths.append(Path(source, target, d, (x0 + x1) / 2 + bow * 0.75 + 3,
                              (y0 + y1) / 2 + 4, b.layer <= a.layer))
    width = MARGIN * 2 + inner + BACK_ROOM
    height = TOP + len(rows) * (BOX_HEIGHT + GAP_Y) - GAP_Y + MARGIN
    return Layout(width, height, boxes, paths)


def overlapping(boxes: Sequence[Box]) -> list[tuple[str, str]]:
    """Pairs of boxes that overlap (none, in a layout)."""
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom:
                out.append((a.name, b.name))
    return out
