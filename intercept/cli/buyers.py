"""`intercept buyers list | show`: buyer profiles, read from the store (each listing and
search written to the audit log)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from ..foundation.phone import mask
from ..foundation.terminal import printable, printable_json
from .options import (
    audit,
    buyer_number,
    city_numbers,
    db_option,
    load_config,
    open_store_readonly,
    since,
    store_config_option,
)


def _stamp(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@click.group()
def buyers() -> None:
    """Buyer profiles: one per number that texted our decoys, across numbers and cities.

    A profile gathers his conversations (first and last contact, cities, messages in and out),
    what he said (captured price offered, time, place), his photos, what is known of his
    number (offline metadata and lookups), outcomes and the deterrence message sent. Only
    buyer data: a number that also appears in outreach data is withheld. See docs/evidence.md.

    \b
    Examples:
      intercept buyers list --city seattle --since 2024-05-01
      intercept buyers show +12065550199 --json
    """


@buyers.command("list")
@store_config_option
@db_option
@click.option("--city", help="Only conversations on this city's numbers (a key of [cities]).")
@click.option("--since", callback=since,
              help="Only conversations started on or after this date (YYYY-MM-DD, UTC).")
@click.option("--json", "as_json", is_flag=True, help="One profile as JSON per line.")
@click.option("--full-numbers", is_flag=True,
              help="Show buyers' numbers in full (masked by default: +1•••••••99).")
def list_(config_path: Path | None, db: Path | None, city: str | None, since: float | None,
          as_json: bool, full_numbers: bool) -> None:
    """List buyer profiles, first contact first. Numbers are masked unless --full-numbers.

    \b
    Examples:
      intercept buyers list
      intercept buyers list --city atlanta --since 2024-05-01 --full-numbers
      intercept buyers list --json | jq -c '{number, cities, deterrence}'
    """
    from ..buyers.profiles import buyer_profiles, selected_conversations
    from ..store.reads import withheld_buyer_count

    config = load_config(config_path)
    ours = city_numbers(config, city)
    conn = open_store_readonly(config, db)
    try:
        conn.row_factory = None
        ids = selected_conversations(conn, our_numbers=ours, since=since)
        profiles = buyer_profiles(conn, ids, city_of={n.number: n.city for n in config.numbers})
        held = withheld_buyer_count(conn)
    finally:
        conn.close()
    filters = (f", city={city}" if city else "") + (
        f", since={datetime.fromtimestamp(since, UTC):%Y-%m-%d}" if since is not None else "")
    audit(config, db, "CLI intercept buyers list",
          f"{len(profiles)} profiles with {'full' if full_numbers else 'masked'} "
          f"numbers{filters}"[:200])
    if as_json:
        for p in profiles:
            shown = p.number if full_numbers else mask(p.number)
            click.echo(printable_json(p.as_json(number=shown)))
    else:
        rows = [["NUMBER", "FIRST SEEN", "LAST SEEN", "CITIES", "CONV", "IN", "OUT", "PHOTOS",
                 "DETERRED"]]
        for p in profiles:
            sent = [d for d in p.deterrence if d.status in ("sent", "delivered")]
            rows.append([p.number if full_numbers else mask(p.number), _stamp(p.first_seen),
                         _stamp(p.last_seen), ",".join(p.cities), str(len(p.conversations)),
                         str(p.messages_in), str(p.messages_out),
                         str(sum(ph.status == "stored" for ph in p.photos)),
                         _stamp(sent[0].at) if sent else "-"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            click.echo(printable("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                                 .rstrip()))
        if not profiles:
            click.echo("(no buyer conversations match)")
    if held:
        click.echo(f"{held} numbers with buyer conversations are withheld: they also appear in "
                   "outreach data (ads, campaigns or outreach conversations).", err=True)


@buyers.command()
@store_config_option
@db_option
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help="The profile as JSON.")
def show(config_path: Path | None, db: Path | None, number: str, as_json: bool) -> None:
    """One buyer's profile, with every conversation he had with any of our numbers.

    NUMBER is his full number (you know it already, so it is shown in full).

    \b
    Examples:
      intercept buyers show +12065550199
      intercept buyers show +12065550199 --json | jq .captured
    """
    from ..buyers.profiles import buyer_profiles, iso, selected_conversations
    from ..store.reads import withheld_buyer_count

    config = load_config(config_path)
    their = buyer_number(number)
    assert their is not None
    conn = open_store_readonly(config, db)
    try:
        conn.row_factory = None
        ids = selected_conversations(conn, number=their)
        profiles = buyer_profiles(conn, ids, city_of={n.number: n.city for n in config.numbers})
        held = withheld_buyer_count(conn, their)
    finally:
        conn.close()
    audit(config, db, "CLI intercept buyers show",
          f"buyer {mask(their)}: {'found' if profiles else 'no profile'}"[:200])
    if not profiles:
        reason = ("it also appears in outreach data (ads, campaigns or outreach conversations), "
                  "so it is withheld" if held else "no buyer conversation with that number")
        raise click.ClickException(f"no buyer profile for {their}: {reason}")
    profile = profiles[0]
    if as_json:
        click.echo(printable_json(profile.as_json(), indent=2))
        return
    data = profile.as_json()
    _echo(f"Buyer {profile.number}")
    _echo(f"  first seen   {_stamp(profile.first_seen)} UTC")
    _echo(f"  last seen    {_stamp(profile.last_seen)} UTC")
    _echo(f"  cities       {', '.join(profile.cities)}")
    _echo(f"  messages     {profile.messages_in} in, {profile.messages_out} out")
    info = profile.number_info
    if info:
        _echo("  number       " + ", ".join(f"{k} {v}" for k, v in info.items()
                                                  if v not in ("", None) and k != "computed_at"))
    for kind, found in profile.cached_lookups.items():
        _echo(f"  {kind:<12} " + ", ".join(f"{k} {v}" for k, v in found["data"].items())
                   + f" ({found['provider']}, {found['fetched_at']})")
    for name, values in profile.captured.items():
        _echo(f"  said         {name}: {' | '.join(values)}")
    for photo in data["photos"]:
        _echo(f"  photo        {photo['status']} {photo['sha256'] or ''} "
                   f"{photo['content_type'] or ''} {photo['received_at'] or ''}".rstrip())
    for d in profile.deterrence:
        _echo(f"  deterrence   {iso(d.at) or '-'} {d.status or '-'} {d.city} "
                   f"{d.link or '(no link)'}")
    _echo("  conversations:")
    for c in profile.conversations:
        _echo(f"    #{c.id} {c.our_number} ({c.city}, {c.persona}) {c.scenario} "
                   f"v{c.version}: {c.status}{', ' + c.outcome if c.outcome else ''}; "
                   f"{c.messages_in} in, {c.messages_out} out; {_stamp(c.started_at)} to "
                   f"{_stamp(c.last_activity)}")


def _echo(line: str) -> None:
    """Print a line holding text from outside (a buyer's words, a lookup's caller name)."""
    click.echo(printable(line))
