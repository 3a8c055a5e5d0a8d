"""`intercept ads ...`: work with paid-sex ads (victim outreach): find the numbers in them."""

from __future__ import annotations

import json
import sys
from typing import BinaryIO

import click

_NAME_OF_STDIN = "<stdin>"


@click.group()
def ads() -> None:
    """Work with ads: find the phone numbers in them.

    \b
    Examples:
      intercept ads extract ads.txt
      intercept ads extract --region CA scraped.jsonl > numbers.jsonl
      printf 'call 2O6-5five5-0one23\\n' | intercept ads extract
    """


def _check_region(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from .outreach import find_numbers

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
    from .outreach import find_numbers

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
