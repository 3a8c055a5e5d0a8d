"""The soak: does the server's memory stay flat? (`intercept-loadtest --soak [DURATION]`)

A scenario run (the shipped one unless `--scenario` says otherwise) for DURATION (default 1 h)
in which conversations keep starting, hibernating, waking and ending at a steady rate: the
buyer slots start a new conversation when one is over, the server's `runtime.hibernate_after`
is short (2 s unless `--hibernate-after` says otherwise), and before a quarter of their steps
buyers pause longer than that, so the conversation's task ends and the next text wakes it
(scaled scenario timeouts wake others). The server's resident memory is read from /proc every
`--rss-every` seconds. After the warm-up (`--warmup`, default the first 10 %) the report gives
the drift two ways: (max - min) / mean of the samples, and the mean of the last tenth against
the first tenth; the run fails when the first exceeds `--max-drift` percent (default 5).
`--rss-svg FILE` writes the curve as a small SVG. With each sample the server's bounded
memories are read from /metrics (`intercept_memory_entries` and `_bound`): the report says when
each first reached its bound, so a warm-up can be chosen that ends after they are all full.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from intercept.engine.durations import parse_duration
from intercept.foundation.charts import COLOURS, svg, text
from loadtest.state import LoadRun, Options

LONG_PAUSE_CHANCE = 0.25


def memories(metrics_text: str) -> dict[str, tuple[float, float]]:
    """memory -> (entries, bound), from a /metrics page."""
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name in ("intercept_memory_entries", "intercept_memory_bound"):
            for sample in family.samples:
                found.setdefault(sample.labels["memory"], {})[family.name] = sample.value
    return {name: (row.get("intercept_memory_entries", 0.0),
                   row.get("intercept_memory_bound", 0.0)) for name, row in found.items()}


class Bounds:
    """When each bounded memory of the server first reached its bound during the soak."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[float, float]] = {}
        self.full_at: dict[str, float] = {}

    def saw(self, at: float, found: dict[str, tuple[float, float]]) -> None:
        self.last = found
        for name, (entries, bound) in found.items():
            if bound and entries >= bound and name not in self.full_at:
                self.full_at[name] = at

    def figures(self) -> dict[str, dict[str, Any]]:
        return {name: {"entries": round(entries), "bound": round(bound),
                       "full_at_s": self.full_at.get(name)}
                for name, (entries, bound) in sorted(self.last.items())}


def drift(samples: list[tuple[float, float]], warmup: float) -> dict[str, Any]:
    """RSS drift after `warmup` seconds: samples are (seconds since the start, MiB)."""
    kept = [mib for at, mib in samples if at >= warmup]
    if len(kept) < 2:
        return {"samples_after_warmup": len(kept), "max_min_over_mean_pct": None,
                "first_vs_last_window_pct": None}
    mean = sum(kept) / len(kept)
    window = max(1, len(kept) // 10)
    first = sum(kept[:window]) / window
    last = sum(kept[-window:]) / window
    return {"samples_after_warmup": len(kept), "mean_mib": round(mean, 1),
            "min_mib": round(min(kept), 1), "max_mib": round(max(kept), 1),
            "max_min_over_mean_pct": round(100 * (max(kept) - min(kept)) / mean, 2),
            "first_window_mib": round(first, 1), "last_window_mib": round(last, 1),
            "first_vs_last_window_pct": round(100 * (last - first) / first, 2)}


def rss_svg(samples: list[tuple[float, float]], warmup: float, title: str) -> str:
    """The RSS curve as a standalone SVG: MiB over seconds, the warm-up shaded."""
    height, left, right, top, bottom = 240, 60, 710, 24, 200
    if not samples:
        return svg(40, ['<text x="8" y="24">no samples</text>'], title)
    end = max(at for at, _ in samples) or 1.0
    low = min(mib for _, mib in samples)
    high = max(mib for _, mib in samples)
    low, high = low * 0.98, max(high * 1.02, low * 0.98 + 1)

    def x(at: float) -> float:
        return left + (right - left) * at / end

    def y(mib: float) -> float:
        return bottom - (bottom - top) * (mib - low) / (high - low)

    points = " ".join(f"{x(at):.1f},{y(mib):.1f}" for at, mib in samples)
    body = [f'<text x="8" y="16" font-weight="bold">{text(title)}</text>',
            f'<rect x="{left}" y="{top}" width="{max(0.0, x(min(warmup, end)) - left):.1f}" '
            f'height="{bottom - top}" fill="#eee"><title>warm-up</title></rect>',
            f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#999"/>',
            f'<text x="{left - 6}" y="{bottom}" text-anchor="end">{low:.0f}</text>',
            f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">{high:.0f}</text>',
            f'<text x="{left - 6}" y="{(top + bottom) / 2:.0f}" text-anchor="end">MiB</text>',
            f'<text x="{left}" y="{bottom + 16}">0 s</text>',
            f'<text x="{right}" y="{bottom + 16}" text-anchor="end">{end:,.0f} s</text>',
            f'<polyline fill="none" stroke="{COLOURS[0]}" stroke-width="1.5" '
            f'points="{points}"/>']
    return svg(height, body, title)


async def run_soak(options: Options, *, warmup: float | None, every: float, max_drift: float,
                   svg_path: Path | None, progress: TextIO | None = sys.stderr
                   ) -> dict[str, Any]:
    """The soak run and its report: the scenario report plus a `soak` block."""
    from loadtest.scenario_run import run_scenario

    if options.in_process:
        raise ValueError("--soak reads the server's memory from its own process: drop "
                         "--in-process")
    if options.processes:
        raise ValueError("--soak runs the buyers in the load tester's process; drop "
                         "--processes")
    options.scenario = options.scenario or "shipped"
    options.pause_chance = LONG_PAUSE_CHANCE
    samples: list[tuple[float, float]] = []
    bounds = Bounds()

    async def sample(run: LoadRun) -> None:
        assert run.server is not None
        async with httpx.AsyncClient(timeout=5.0) as client:
            while trio.current_time() <= run.end_at:  # the load, not the drain after it
                await _sample_once(run, client)
                await trio.sleep(every)

    async def _sample_once(run: LoadRun, client: httpx.AsyncClient) -> None:
        assert run.server is not None
        found = run.server.sample()
        at = round(trio.current_time() - run.start_at, 3)
        if found:
            samples.append((at, round(found["rss_mib"], 2)))
        if run.health_url is not None:
            try:
                page = await client.get(f"{run.health_url}/metrics")
                bounds.saw(at, memories(page.text))
            except (httpx.HTTPError, ValueError):
                pass  # a missed reading: the next one says the same
        if progress is not None and found and len(samples) % 6 == 1:
            print(f"soak t={at:,.0f}s rss {found['rss_mib']:.1f} MiB", file=progress,
                  flush=True)

    report = await run_scenario(options, progress=None, hook=sample)
    warm = options.duration * 0.1 if warmup is None else warmup
    figures = drift(samples, warm)
    figures.update({"duration_s": options.duration, "warmup_s": warm, "every_s": every,
                    "max_drift_pct": max_drift, "hibernate_after": options.hibernate_after,
                    "samples": len(samples)})
    measured = figures["max_min_over_mean_pct"]
    figures["flat"] = measured is not None and measured <= max_drift
    if svg_path is not None:
        svg_path.write_text(rss_svg(samples, warm, f"intercept serve RSS over a "
                                    f"{options.duration:,.0f} s soak"), encoding="utf-8")
        figures["svg"] = str(svg_path)
    figures["memories"] = bounds.figures()
    figures["curve"] = samples
    report["soak"] = figures
    report["ok"] = bool(report["ok"] and figures["flat"])
    return report


def soak_text(report: dict[str, Any]) -> str:
    """The soak's lines for people (after the scenario report's)."""
    from loadtest.scenario_report import scenario_text

    soak = report["soak"]
    lines = [scenario_text(report),
             f"  soak          {soak['samples']} RSS samples every {soak['every_s']:g} s, "
             f"warm-up {soak['warmup_s']:g} s, hibernate_after {soak['hibernate_after']}",
             f"  RSS after     mean {soak.get('mean_mib', '-')} MiB, min {soak.get('min_mib', '-')}"
             f", max {soak.get('max_mib', '-')}",
             f"  drift         (max - min) / mean {soak['max_min_over_mean_pct']} %, last tenth "
             f"vs first {soak['first_vs_last_window_pct']} % (limit {soak['max_drift_pct']:g} %"
             f": {'flat' if soak['flat'] else 'NOT FLAT'})"]
    for name, row in soak.get("memories", {}).items():
        full = (f"full at {row['full_at_s']:,.0f} s" if row["full_at_s"] is not None
                else "not full")
        lines.append(f"  memory        {name}: {row['entries']:,} of {row['bound']:,} ({full})")
    if "svg" in soak:
        lines.append(f"  curve         {soak['svg']}")
    return "\n".join(lines)


def duration(value: str) -> float:
    """--soak 1h / 90s / 3600."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("--soak must be longer than zero")
    return seconds
