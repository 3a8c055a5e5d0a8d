"""`intercept campaign start | pause | status`: victim-outreach campaigns of the running server.

Campaigns are defined in the config ([[campaigns]]); these commands start, pause and watch them
through the server's admin API (docs/api.md), like `intercept advocate`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .options import ApiClient, api_options

_SKIPS = (("opted_out", "opted out"), ("recent", "contacted recently"),
          ("in_conversation", "in a conversation"), ("no_window", "no window"))


@click.group()
def campaign() -> None:
    """Start, pause and follow the outreach campaigns of the running server.

    A campaign texts the numbers found in its city's ads (intercept ads import) once, from
    our outreach numbers, only inside its window in each recipient's local time, at its rates,
    never to an opted-out number and never twice within contact_again_after. Campaigns are
    defined in the config ([[campaigns]]; docs/outreach.md). The commands use the admin API:
    --url (default: http.listen of the config) and an admin token (--token or
    INTERCEPT_API_TOKEN; a viewer token is enough for status).

    \b
    Examples:
      intercept campaign status
      intercept campaign start seattle-spring
      intercept campaign status seattle-spring --watch
      intercept campaign pause seattle-spring
    """


def _describe(item: dict[str, Any]) -> list[str]:
    skipped = item["skipped"]
    started = item["started_at"]
    since = "" if started is None else (
        " since " + datetime.fromisoformat(started).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        + " UTC")
    return [
        f"{item['name']} ({item['city']}): {item['status']}{since}; window {item['window']} "
        f"recipient's time; from {', '.join(item['numbers'])}",
        f"  targets {item['targets']}: texted {item['texted']} (sent {item['sent']}, queued "
        f"{item['queued']}, failed {item['failed']}), held for quiet hours {item['held']}, "
        f"waiting {item['waiting']}",
        "  skipped " + str(sum(skipped.values())) + ": " + ", ".join(
            f"{label} {skipped[key]}" for key, label in _SKIPS),
        f"  replied {item['replied']}, handed off {item['handed_off']}, opted out "
        f"{item['opted_out']}",
    ]


@campaign.command()
@api_options(role="admin")
@click.argument("name")
def start(url: str | None, token: str | None, config_path: Path | None, name: str) -> None:
    """Start a campaign, or resume a paused one (the admin role).

    \b
    Examples:
      intercept campaign start seattle-spring
      intercept campaign start seattle-spring --url http://10.0.0.5:8080
    """
    answer = ApiClient(url, token, config_path).call("POST", "/api/campaigns/start",
                                                     body={"name": name})
    previous = answer["previous"]
    click.echo(f"Campaign {name} is running (was {previous})." if previous != "running"
               else f"Campaign {name} was already running.")
    for line in _describe(answer["campaign"]):
        click.echo(line)


@campaign.command()
@api_options(role="admin")
@click.argument("name")
def pause(url: str | None, token: str | None, config_path: Path | None, name: str) -> None:
    """Pause a campaign: no new first texts; replies are still answered (the admin role).

    \b
    Examples:
      intercept campaign pause seattle-spring
    """
    answer = ApiClient(url, token, config_path).call("POST", "/api/campaigns/pause",
                                                     body={"name": name})
    click.echo(f"Campaign {name} is paused (was {answer['previous']}).")
    for line in _describe(answer["campaign"]):
        click.echo(line)


@campaign.command()
@api_options(role="viewer, advocate or admin")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
@click.option("--watch", "every", type=float, is_flag=False, flag_value=10.0, default=None,
              metavar="[SECONDS]", help="Print again every SECONDS (default 10) until Ctrl-C.")
def status(url: str | None, token: str | None, config_path: Path | None, name: str | None,
           as_json: bool, every: float | None) -> None:
    """Live progress of one campaign, or of all: targets, texted (sent, queued, failed), held
    for quiet hours, waiting for the rates, skipped (opted out, contacted recently, in a
    conversation), replied, handed off.

    \b
    Examples:
      intercept campaign status
      intercept campaign status seattle-spring --watch 30
      intercept campaign status --json | jq '.items[] | {name, texted, replied}'
    """
    import time

    client = ApiClient(url, token, config_path)
    params = {"name": name} if name else None
    try:
        while True:
            answer = client.call("GET", "/api/campaigns", params=params)
            if as_json:
                click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
            elif not answer["items"]:
                click.echo("No campaigns in the config ([[campaigns]], docs/outreach.md).")
            else:
                for item in answer["items"]:
                    for line in _describe(item):
                        click.echo(line)
            if every is None:
                return
            time.sleep(every)
            click.echo("")
    except KeyboardInterrupt:
        return
