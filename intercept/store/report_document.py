"""The impact report as one JSON document: what `intercept report --json` prints and
`GET /api/report` answers (counts and rates only: never a number or a message)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from ..foundation.stats import wilson
from .report import Report, impact_report
from .retention import add_purged
from .returns import WINDOWS, Cohort, ReturnRow, city_lookup, returns_report


def read_report(conn: sqlite3.Connection, *, city_of: dict[str, str], as_of: float,
                since: float | None = None, city: str | None = None,
                period: str = "month") -> tuple[Report, list[ReturnRow]]:
    """The figures per city (and in total), and the return contacts per city and `period`.

    `city_of` maps our numbers to their city keys (the config's; numbers no longer configured
    are found through the store's registered numbers). Conversations removed by retention
    still count: their figures were kept."""
    factory, conn.row_factory = conn.row_factory, None  # plain tuples, as these reads expect
    try:
        result = impact_report(conn, since=since, city=city, city_of=city_of)
        result = add_purged(conn, result, since=since, city=city)
        returns = returns_report(conn, as_of=as_of, city_of_number=city_lookup(conn, city_of),
                                 period=period, since=since, city=city)
    finally:
        conn.row_factory = factory
    return result, returns


def report_document(result: Report, returns: list[ReturnRow], *,
                    since: float | None) -> dict[str, Any]:
    """The report as JSON: per city, in total, and the return contacts with intervals."""
    return {
        "since": None if since is None else datetime.fromtimestamp(since, UTC).isoformat(),
        "cities": [c.as_json() for c in result.cities],
        "total": result.total.as_json(),
        "returns": [returns_json(r) for r in returns]}


def returns_json(row: ReturnRow) -> dict[str, Any]:
    """A row of return contacts as JSON, with 95% Wilson intervals of the return rates."""
    return {"city": row.city, "period": row.period, "deterred": _cohort_json(row.deterred),
            "deterrence_delivered": row.delivered, "left_before_deterrence":
                _cohort_json(row.left), "open": row.open}


def _cohort_json(cohort: Cohort) -> dict[str, Any]:
    windows = {}
    for days in WINDOWS:
        p = wilson(cohort.back[days], cohort.judged[days])
        windows[f"{days}d"] = {"judged": p.trials, "came_back": p.successes, "rate": p.rate,
                               "low": p.low, "high": p.high}
    return {"buyers": cohort.buyers, "windows": windows}
