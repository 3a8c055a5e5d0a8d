"""/reports: the impact report per city (the figures of `intercept report`), with bar charts
drawn on the server as SVG (no script; the style sheet colours them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from ..foundation.stats import wilson
from ..http.auth import Role
from ..http.routing import HTTPError, Request, Response, Route
from ..store.report import CityFigures
from ..store.report_document import read_report
from ..store.returns import WINDOWS, Cohort
from .numbers import NumberIndex

BAR_WIDTH = 100.0
"""Width of the longest bar, in the chart's own units (it scales with the page)."""


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    width: float
    """0..BAR_WIDTH, relative to the chart's largest value."""


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: list[Bar]


def chart(title: str, pairs: list[tuple[str, int]]) -> Chart:
    """Horizontal bars for (label, value) pairs, the largest value full width."""
    top = max((v for _, v in pairs), default=0) or 1
    return Chart(title, [Bar(label, value, BAR_WIDTH * value / top) for label, value in pairs])


def duration(seconds: float | None) -> str:
    """``12 min 05 s`` or ``3 h 20 min``; a dash for none."""
    if seconds is None:
        return "–"
    total = round(seconds)
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"


def charts(city: CityFigures) -> list[Chart]:
    o, b = city.outreach, city.buyers
    return [
        chart("Victim outreach", [("numbers found", o.numbers_found), ("contacted", o.contacted),
                                  ("replied", o.replied), ("handed off", o.handed_off),
                                  ("positive", o.positive), ("services", o.connected)]),
        chart("Buyer deterrence", [("buyers", b.buyers), ("conversations", b.conversations),
                                   ("deterrence sent", b.deterred)]),
    ]


class ReportPage:
    """The impact report, for the viewer role and up (counts only, no numbers)."""

    def __init__(self, console: Any):
        self.console = console
        """The `app.Console` this page belongs to."""
        self.numbers = NumberIndex(console.services.config)
        """Our numbers' cities, as of the last reload."""

    def routes(self) -> list[Route]:
        return [Route("GET", "/reports", self.report, "The impact report", role=Role.viewer)]

    async def report(self, request: Request) -> Response:
        fields = {k: v.strip() for k, v in parse_qsl(
            request.scope.get("query_string", b"").decode("utf-8", "replace"))}
        city = fields.get("city") or None
        if city is not None and city not in dict(self.numbers.cities):
            raise HTTPError(400, f"There is no city {city!r}; the cities are "
                                 f"{', '.join(k for k, _ in self.numbers.cities) or 'none'}.")
        since = None
        if fields.get("since"):
            try:
                day = date.fromisoformat(fields["since"])
            except ValueError:
                raise HTTPError(400, f"{fields['since']!r} is not a date (YYYY-MM-DD).") from None
            since = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()

        period = fields.get("period") or "month"
        if period not in PERIODS:
            raise HTTPError(400, f"{period!r} is not a period; use {', '.join(PERIODS)}.")
        result, returns = await self.console.reads.run(partial(
            read_report, city_of=dict(self.numbers.city_of), as_of=self.console.now(),
            since=since, city=city, period=period))
        rows = [*result.cities, result.total] if len(result.cities) != 1 else result.cities
        return self.console.html(
            200, "reports.html", request, page="reports", rows=rows, cities=self.numbers.cities,
            form={"city": city or "", "since": fields.get("since", ""), "period": period},
            charts=[(c.city, charts(c)) for c in result.cities], duration=duration,
            returns=[(r, {d: _share(r.deterred, d) for d in WINDOWS},
                      {d: _share(r.left, d) for d in WINDOWS}) for r in returns],
            windows=WINDOWS, periods=PERIODS)


PERIODS = ("month", "quarter", "year", "all")


def _share(cohort: Cohort, days: int) -> str:
    """"3/10 (30%, 11–60%)": came back of those judged, with the 95% Wilson interval."""
    p = wilson(cohort.back[days], cohort.judged[days])
    if not p.trials or p.rate is None or p.low is None or p.high is None:
        return "–"
    return (f"{p.successes}/{p.trials} ({100 * p.rate:.0f}%, "
            f"{100 * p.low:.0f}–{100 * p.high:.0f}%)")
