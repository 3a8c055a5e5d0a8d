"""Charts as inline SVG, and HTML tables, for a self-contained page (`intercept report --html`).

Plain functions of plain data that return markup: lines over days, horizontal bars (a funnel),
proportions with their intervals. No script, nothing fetched; every text is escaped (`text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from html import escape

from .stats import Proportion

WIDTH = 720
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 780px; margin: 2em auto;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.2em 0.6em; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
svg { display: block; margin: 0.5em 0; } svg text { font: 12px system-ui, sans-serif; }
.note { color: #666; font-size: 0.9em; }
"""


def text(value: object) -> str:
    """`value` as escaped HTML text (quotes too, so it is safe in an attribute)."""
    return escape(str(value), quote=True)


def svg(height: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{text(label)}">'
            f"<title>{text(label)}</title>" + "".join(body) + "</svg>")


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def line_chart(title: str, series: dict[str, dict[str, int]]) -> str:
    """One line per series (city) over every day from the first to the last, with a legend."""
    every = sorted({d for days in series.values() for d in days})
    if not every:
        return f'<p class="note">{text(title)}: nothing yet.</p>'
    days = _days(every[0], every[-1])
    top = max(max(v.values()) for v in series.values()) or 1
    left, right, top_y, bottom = 50, WIDTH - 10, 10, 190
    step = (right - left) / max(1, len(days) - 1)
    body = [f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>',
            f'<text x="{left - 6}" y="{bottom}" text-anchor="end">0</text>',
            f'<text x="{left - 6}" y="{top_y + 10}" text-anchor="end">{top}</text>',
            f'<text x="{left}" y="{bottom + 16}">{text(days[0])}</text>',
            f'<text x="{right}" y="{bottom + 16}" text-anchor="end">{text(days[-1])}</text>']
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(
            f"{left + j * step:.1f},{bottom - (bottom - top_y) * values.get(d, 0) / top:.1f}"
            for j, d in enumerate(days))
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                    f'points="{points}"><title>{text(name)}</title></polyline>')
        body.append(f'<rect x="{left + 130 * i}" y="{bottom + 26}" width="10" height="10" '
                    f'fill="{colour}"/><text x="{left + 14 + 130 * i}" y="{bottom + 35}">'
                    f"{text(name)}</text>")
    return svg(bottom + 45, body, title)


def bar_chart(title: str, pairs: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars, the largest value full width: a funnel read top to bottom."""
    top = max((v for _, v in pairs), default=0) or 1
    left, room = 160, WIDTH - 160 - 60
    body = []
    for i, (label, value) in enumerate(pairs):
        y = 8 + 26 * i
        body.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{text(label)}</text>'
                    f'<rect x="{left}" y="{y}" width="{room * value / top:.1f}" height="18" '
                    f'fill="{COLOURS[0]}"/><text x="{left + room * value / top + 6:.1f}" '
                    f'y="{y + 14}">{value}</text>')
    return svg(16 + 26 * len(pairs), body, title)


def interval_chart(title: str, rows: Sequence[tuple[str, Proportion]]) -> str:
    """Each proportion as a dot with its interval as a line, on a 0–100% axis."""
    left, right = 230, WIDTH - 70
    span = right - left

    def x(value: float) -> float:
        return left + span * value

    height = 50 + 24 * len(rows)
    body = [f'<text x="0" y="14" font-weight="bold">{text(title)}</text>',
            f'<line x1="{x(0)}" y1="{height - 18}" x2="{x(1)}" y2="{height - 18}" '
            f'stroke="#999"/>']
    for tick in (0, 0.25, 0.5, 0.75, 1):
        body.append(f'<text x="{x(tick):.1f}" y="{height - 4}" text-anchor="middle">'
                    f"{tick:.0%}</text>")
    for i, (label, p) in enumerate(rows):
        y = 34 + 24 * i
        body.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{text(label)}</text>')
        if p.rate is None or p.low is None or p.high is None:
            body.append(f'<text x="{x(0)}" y="{y + 4}">no data</text>')
            continue
        body.append(f'<line x1="{x(p.low):.1f}" y1="{y}" x2="{x(p.high):.1f}" y2="{y}" '
                    f'stroke="{COLOURS[1]}" stroke-width="2"/>'
                    f'<circle cx="{x(p.rate):.1f}" cy="{y}" r="4" fill="{COLOURS[1]}"/>'
                    f'<text x="{x(1) + 8}" y="{y + 4}">{p.successes}/{p.trials}</text>')
    return svg(height, body, title)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{text(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{text(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
