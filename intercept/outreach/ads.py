"""Reading ads to import: JSON lines, CSV, or a JSON feed (an array, or ``{"ads": [...]}``).

Every ad has a text (field ``text``, or another named by the caller) and optionally ``id``
(the source's id of the ad), ``url``, ``posted_at`` (ISO 8601, or Unix seconds) and ``city``
(a key of ``[cities]``). Other fields are ignored. A line or item that cannot be read becomes a
`BadAd` saying where and why, and the rest is still read. `prepare` finds the numbers in an
ad's text (in its city's region) and makes the record the store keeps: never the text itself.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ..config import City
from ..store.ads import AdRecord, text_hash
from .extract import find_numbers


@dataclass(frozen=True, slots=True)
class RawAd:
    """An ad as read, before its numbers are looked for."""

    where: str
    """FILE:LINE (or URL item N) for messages."""
    text: str
    external_id: str | None = None
    url: str | None = None
    posted_at: float | None = None
    city: str | None = None


@dataclass(frozen=True, slots=True)
class BadAd:
    where: str
    reason: str
    """A sentence, e.g. "the 'text' field is missing."."""


class FeedError(Exception):
    """A feed cannot be fetched or read as a whole."""


def parse_time(value: Any) -> float:
    """Unix seconds from a number or an ISO 8601 date/time (UTC when no offset is given)."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a time: {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return parse_time(float(text))
        except ValueError:
            raise ValueError(f"{value!r} is not a time (ISO 8601, e.g. 2024-05-01T20:15:00Z, "
                             "or Unix seconds)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def from_item(item: Any, where: str, field: str) -> RawAd | BadAd:
    """An ad from a JSON object (or a CSV row as a dict of strings)."""
    if not isinstance(item, Mapping):
        return BadAd(where, "not a JSON object.")
    if field not in item or item[field] is None:
        return BadAd(where, f"the {field!r} field is missing.")
    text = item[field]
    if not isinstance(text, str):
        return BadAd(where, f"the {field!r} field is not a string.")
    if not text.strip():
        return BadAd(where, f"the {field!r} field is empty.")
    values: dict[str, Any] = {}
    for key in ("id", "url", "city"):
        value = item.get(key)
        if value is None or value == "":
            continue
        if key == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return BadAd(where, f"the {key!r} field is not a string.")
        values[key] = value.strip()
    posted = item.get("posted_at")
    posted_at = None
    if posted is not None and posted != "":
        try:
            posted_at = parse_time(posted)
        except ValueError as exc:
            return BadAd(where, f"posted_at: {exc}.")
    return RawAd(where, text, external_id=values.get("id"), url=values.get("url"),
                 posted_at=posted_at, city=values.get("city"))


def read_jsonl(lines: Iterable[bytes], name: str, field: str, *, plain: bool = False
               ) -> Iterator[RawAd | BadAd]:
    """One JSON object per line; blank lines are skipped. With `plain`, as `ads extract`
    reads: a line that does not start with "{" is an ad's whole text."""
    for number, data in enumerate(lines, 1):
        where = f"{name}:{number}"
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield BadAd(where, f"not UTF-8 text (byte {exc.start + 1}).")
            continue
        if number == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        if plain and not line.lstrip().startswith("{"):
            yield RawAd(where, line.rstrip("\r\n"))
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadAd(where, f"not valid JSON ({exc.msg} at column {exc.colno}).")
            continue
        yield from_item(item, where, field)


def read_csv(data: io.BufferedIOBase | Any, name: str, field: str) -> Iterator[RawAd | BadAd]:
    """A CSV file with a header row naming the columns. Raises FeedError if the header has no
    text column."""
    text = io.TextIOWrapper(data, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise FeedError(f"{name}: the CSV header cannot be read ({exc})") from None
    columns = [c.strip() for c in header]
    if field not in columns:
        raise FeedError(f"{name}: the CSV header has no {field!r} column (columns: "
                        f"{', '.join(columns) or 'none'}); name it with --field")
    while True:
        start = reader.line_num + 1
        where = f"{name}:{start}"
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadAd(where, f"not valid CSV ({exc}).")
            continue
        if not any(cell.strip() for cell in row):
            continue
        if any("\udc80" <= ch <= "\udcff" for cell in row for ch in cell):
            yield BadAd(where, "not UTF-8 text.")
            continue
        if len(row) != len(columns):
            yield BadAd(where, f"{len(row)} column{'s' * (len(row) != 1)} where the header has "
                               f"{len(columns)}.")
            continue
        yield from_item(dict(zip(columns, row, strict=True)), where, field)


def read_feed(payload: bytes, name: str, field: str) -> list[RawAd | BadAd]:
    """A JSON array of ads, or an object whose ``ads`` member is one. Raises FeedError."""
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedError(f"{name}: the feed is not valid JSON ({exc})") from None
    if isinstance(document, dict) and isinstance(document.get("ads"), list):
        document = document["ads"]
    if not isinstance(document, list):
        raise FeedError(f"{name}: the feed is neither a JSON array of ads nor an object with "
                        "an \"ads\" array")
    return [from_item(item, f"{name} item {i}", field) for i, item in enumerate(document, 1)]


def prepare(ad: RawAd, *, cities: Mapping[str, City], city: str | None, source: str
            ) -> AdRecord | BadAd:
    """The record to store: its city (the ad's own, else `city`) and the numbers in it."""
    key = ad.city or city
    if key is None:
        return BadAd(ad.where, "no city: give --city, or a 'city' field.")
    found = cities.get(key)
    if found is None:
        return BadAd(ad.where, f"unknown city {key!r}; the cities are "
                               f"{', '.join(sorted(cities)) or 'none'}.")
    try:
        numbers = tuple(dict.fromkeys(f.e164 for f in find_numbers(ad.text,
                                                                  region=found.region)))
    except ValueError as exc:  # the city's region is not one phonenumbers knows
        return BadAd(ad.where, f"cities.{key}.region: {exc}")
    return AdRecord(city=key, source=source, text_hash=text_hash(ad.text), numbers=numbers,
                    external_id=ad.external_id, url=ad.url, posted_at=ad.posted_at)
