"""`intercept ads ...`: work with paid-sex ads (victim outreach): find the numbers in them,
import them into the store for campaigns."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from .options import load_config

if TYPE_CHECKING:
    import sqlite3

    import httpx

    from ..config import City, Config
    from ..outreach.ads import BadAd, RawAd
    from ..store.ads import AdRecord, ImportCounts

_NAME_OF_STDIN = "<stdin>"


@click.group()
def ads() -> None:
    """Work with ads: find the phone numbers in them, import them for campaigns.

    \b
    Examples:
      intercept ads extract ads.txt
      intercept ads extract --region CA scraped.jsonl > numbers.jsonl
      printf 'call 2O6-5five5-0one23\\n' | intercept ads extract
      intercept ads import scraped.jsonl --city seattle --source scraper-a
      intercept ads import https://feed.example/ads.json --city seattle --watch
    """


def _check_region(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from ..outreach import find_numbers

    try:
        find_numbers("", region=value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value.upper()


def _ad_text(line: str, field: str) -> str:
    """The ad in one input line: the line itself, or `field` of a JSON object line."""
    if not line.lstrip().startswith("{"):
        return line
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno}).") from None
    if not isinstance(item, dict):
        raise ValueError("not a JSON object.")
    if field not in item:
        raise ValueError(f"the JSON object has no {field!r} field.")
    text = item[field]
    if not isinstance(text, str):
        raise ValueError(f"the {field!r} field is not a string.")
    return text


@ads.command("extract")
@click.argument("file", required=False, default="-",
                type=click.Path(dir_okay=False, allow_dash=True, exists=True))
@click.option("--region", default="US", show_default=True, callback=_check_region,
              help="Country whose national numbers the ads use (two letters: US, CA, GB, ...). "
                   "Numbers written with + and a country code are read as such anyway.")
@click.option("--field", default="text", show_default=True,
              help="In JSON lines, the field that holds the ad text.")
def ads_extract(file: str, region: str, field: str) -> None:
    """Print the phone numbers in ads, one JSON line per number found.

    FILE (or stdin, when it is missing or -) has one ad per line: plain text, or a JSON object
    with the ad in its "text" field (see --field), told apart line by line. Numbers are found
    however an ad disguises them: spelled out, letters for digits, any separators, emoji
    keycaps, full-width or other Unicode digits. Prices, measurements, dates, times, ages,
    zip codes and ad ids are not numbers.

    Each number is printed as {"line": N, "e164": "+1…", "span": [start, end], "raw": "…"}:
    N is the input line (from 1), span the characters of the ad text (for JSON, of its field)
    holding the number, raw that part of the text. Nothing else of the ad is printed.

    A line that cannot be read (not UTF-8, bad JSON, no such field) is reported on stderr with
    its line number and skipped; the command then exits 1 after reading everything.

    \b
    Examples:
      intercept ads extract ads.txt
      intercept ads extract scraped.jsonl --field body
      intercept ads extract --region GB uk-ads.jsonl
      printf 'call 2O6-5five5-0one23\\n' | intercept ads extract
      cat ads.jsonl | intercept ads extract - | jq -r .e164 | sort -u
    """
    from ..outreach import find_numbers

    name = _NAME_OF_STDIN if file == "-" else file
    stream: BinaryIO
    if file == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(file, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise click.ClickException(f"Cannot read {file}: {exc.strerror}.") from None
    out = sys.stdout
    bad = 0
    try:
        for number, data in enumerate(stream, 1):
            try:
                line = data.decode("utf-8").rstrip("\r\n")
                if number == 1:
                    line = line.removeprefix("\ufeff")  # a byte-order mark is not the ad
            except UnicodeDecodeError as exc:
                click.echo(f"{name}:{number}: not UTF-8 text (byte {exc.start + 1}). Line "
                           "skipped.", err=True)
                bad += 1
                continue
            if not line.strip():
                continue
            try:
                text = _ad_text(line, field)
            except ValueError as exc:
                click.echo(f"{name}:{number}: {exc} Line skipped.", err=True)
                bad += 1
                continue
            for found in find_numbers(text, region=region):
                out.write(json.dumps({"line": number, "e164": found.e164,
                                      "span": list(found.span), "raw": found.raw},
                                     ensure_ascii=False) + "\n")
    except OSError as exc:
        raise click.ClickException(f"Cannot read {name}: {exc.strerror or exc}.") from None
    finally:
        if file != "-":
            stream.close()
    out.flush()
    if bad:
        click.echo(f"{name}: {bad} line{'s' * (bad != 1)} could not be read.", err=True)
        sys.exit(1)


def _cities_of_store(conn: sqlite3.Connection, db: Path) -> dict[str, City]:
    """With --db and no --config: the cities the store's server registered, each reading
    national numbers in the country of our numbers there."""
    import phonenumbers

    from ..config import City
    from ..store.ads import registered_cities

    found = registered_cities(conn)
    if not found:
        raise click.ClickException(f"the store {db} names no cities yet (its server registers "
                                   "them when it starts): give --config, the server's config")
    return {key: City(name=key, link="", region=phonenumbers.region_code_for_number(
                phonenumbers.parse(numbers[0])) or "US")
            for key, numbers in found.items()}


def _http_client() -> httpx.Client:
    """The client feeds are fetched with (tests replace it with a mock transport)."""
    import httpx

    return httpx.Client(timeout=60, follow_redirects=True,
                        headers={"User-Agent": "intercept-ads-import"})


class _Importer:
    """Reads ads, reports bad ones on stderr, stores the rest; counts what it did."""

    def __init__(self, config: Config, db: Path, *, city: str | None, source: str,
                 cities_of_store: bool = False):
        from ..config import store_key
        from ..store.writer import connect

        self.config = config
        self.city = city
        self.source = source
        from ..errors import InterceptError

        try:
            self.db = connect(db, synchronous=config.store.synchronous, key=store_key(config))
        except InterceptError as exc:
            raise click.ClickException(str(exc)) from None
        self.cities = dict(config.cities)
        if cities_of_store:
            self.cities = _cities_of_store(self.db.conn, db)
        if city is not None and city not in self.cities:
            self.close()
            raise click.BadParameter(f"unknown city {city!r}; the cities are "
                                     f"{', '.join(sorted(self.cities))}", param_hint="--city")
        self.skipped = 0

    def records(self, ads: Iterable[RawAd | BadAd]) -> Iterator[AdRecord]:
        from ..outreach.ads import BadAd, prepare

        for ad in ads:
            record = ad if isinstance(ad, BadAd) else prepare(
                ad, cities=self.cities, city=self.city, source=self.source)
            if isinstance(record, BadAd):
                click.echo(f"{record.where}: {record.reason} Line skipped.", err=True)
                self.skipped += 1
                continue
            yield record

    def store(self, ads: Iterable[RawAd | BadAd], prefix: str) -> ImportCounts:
        """Import `ads`, then print `prefix` and what was done."""
        from ..store.ads import import_ads

        skipped = self.skipped
        counts = import_ads(self.db.conn, self.records(ads), now=time.time())
        lines = self.skipped - skipped
        click.echo(prefix + counts.summary() + (f"; {lines} line{'s' * (lines != 1)} skipped"
                                                if lines else ""))
        return counts

    def close(self) -> None:
        self.db.conn.close()


@ads.command("import")
@click.argument("source_arg", metavar="FILE|URL")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="INTERCEPT_CONFIG", show_envvar=True,
              help="Config file: its [cities] and store.path.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="The SQLite store (default: store.path of the config). Without --config, "
                   "the cities are the ones its server registered.")
@click.option("--city", help="The city (a key of [cities]) of ads without a 'city' field; "
                             "its region reads their numbers.")
@click.option("--source", "source_name",
              help="Where the ads come from; with their 'id', it recognises an ad seen again. "
                   "Default: the file's name without its extension, or the URL's host.")
@click.option("--field", default="text", show_default=True,
              help="The field (JSON) or column (CSV) that holds the ad text.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "text"]),
              help="The file's format (default: csv for a .csv file, JSON lines for .jsonl, "
                   ".ndjson, .json and standard input, else text: one ad per line, plain or a "
                   "JSON object, as 'ads extract' reads).")
@click.option("--watch", is_flag=True, help="URL: keep polling the feed, printing a line per "
                                            "poll, until Ctrl-C.")
@click.option("--interval", default="5m", show_default=True,
              help="With --watch: the time between polls (a duration: 30s, 5m, 1h).")
def ads_import(source_arg: str, config_path: Path | None, db: Path | None, city: str | None,
               source_name: str | None, field: str, fmt: str | None, watch: bool,
               interval: str) -> None:
    """Import ads into the store: the numbers found in them become a city's campaign targets.

    FILE|URL is a JSON-lines file (one ad per line), a CSV file with a header row, a text
    file of one ad per line (plain text, or a JSON object: what 'ads extract' reads), or an
    http(s) URL of a JSON feed (an array of ads, or {"ads": [...]}). Each ad has its text in
    "text" (see --field) and optionally "id", "url", "posted_at" (ISO 8601 or Unix seconds)
    and "city" (a key of [cities]; else --city). Other fields are ignored.

    The store keeps, per ad: city, source, id, url, posted time, first and last seen, a hash
    of the text (never the text) and the numbers found in it. An ad already stored (the same
    source and id, or the same text) is merged: seen again, not added. A line that cannot be
    read is reported on stderr as FILE:LINE: why, and skipped; the command then exits 1.

    It writes only the ads tables, in short transactions, so it can run beside a serving
    server (a running campaign picks new numbers up within minutes).

    \b
    Examples:
      intercept ads import scraped.jsonl --city seattle --source scraper-a
      intercept ads import export.csv --field body --city atlanta
      intercept ads import ads.txt --city seattle
      intercept ads import https://feed.example/ads.json --city seattle --watch --interval 10m
      intercept ads import ads.jsonl --db /var/lib/intercept/intercept.db
    """
    from urllib.parse import urlsplit

    from ..engine.durations import parse_duration

    config = load_config(config_path)
    try:
        pause = parse_duration(interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--interval") from None
    is_url = source_arg.startswith(("http://", "https://"))
    if watch and not is_url:
        raise click.UsageError("--watch polls a feed: give an http(s) URL")
    if is_url:
        source = source_name or urlsplit(source_arg).hostname or source_arg
    else:
        source = source_name or ("stdin" if source_arg == "-" else Path(source_arg).stem)
    importer = _Importer(config, db or Path(config.store.path), city=city, source=source,
                         cities_of_store=db is not None and config_path is None)
    try:
        if is_url:
            _import_feed(importer, source_arg, field, watch=watch, pause=pause)
        else:
            _import_file(importer, source_arg, field, fmt)
    finally:
        importer.close()
    if importer.skipped:
        click.echo(f"{source_arg}: {importer.skipped} line{'s' * (importer.skipped != 1)} "
                   "skipped.", err=True)
        sys.exit(1)


def _import_file(importer: _Importer, path: str, field: str, fmt: str | None) -> None:
    from ..outreach.ads import FeedError, read_csv, read_jsonl

    if fmt is None:
        suffix = Path(path).suffix.lower()
        fmt = ("csv" if suffix == ".csv" else "jsonl"
               if path == "-" or suffix in (".jsonl", ".ndjson", ".json") else "text")
    name = "<stdin>" if path == "-" else path
    stream: BinaryIO
    if path == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(path, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise click.ClickException(f"Cannot read {path}: {exc.strerror}.") from None
    try:
        ads = (read_csv(stream, name, field) if fmt == "csv"
               else read_jsonl(stream, name, field, plain=fmt == "text"))
        importer.store(ads, f"{name}: ")
    except FeedError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"Cannot read {name}: {exc.strerror or exc}.") from None
    finally:
        if path != "-":
            stream.close()


def _import_feed(importer: _Importer, url: str, field: str, *, watch: bool,
                 pause: float) -> None:
    from ..outreach.ads import FeedError
    from ..outreach.feed import FeedPoller

    with _http_client() as client:
        poller = FeedPoller(url, client=client, field=field)
        polls = 0
        try:
            while True:
                polls += 1
                stamp = datetime.now().strftime("%H:%M:%S")
                prefix = f"{stamp} poll {polls}: " if watch else f"{url}: "
                try:
                    ads = poller.poll()
                except FeedError as exc:
                    if not watch:
                        raise click.ClickException(str(exc)) from None
                    click.echo(f"{prefix}{exc}", err=True)
                else:
                    if ads is None:
                        click.echo(f"{prefix}not modified since the last poll")
                    else:
                        importer.store(ads, prefix)
                if not watch:
                    return
                time.sleep(pause)
        except KeyboardInterrupt:
            click.echo(f"stopped after {polls} polls", err=True)
