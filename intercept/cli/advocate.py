"""`intercept advocate queue | handoffs | claim | release | assign | notes | show | reply |
handback | outcome`: the hand-off queue from a shell.

The commands talk to the running server's admin API (docs/api.md) with httpx; they never open
the database, so they work from any machine that can reach the server.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ..engine.durations import format_age
from ..foundation.terminal import printable, printable_json
from ..store.advocacy import OUTCOME_KINDS
from .options import ApiClient, api_options


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _stamp(text: str | None) -> str:
    moment = _when(text)
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")



@click.group()
def advocate() -> None:
    """Work the hand-off queue of the running server: read, reply, hand back, record outcomes.

    The commands use the server's admin API: give its address with --url (default: http.listen
    of the config) and your token with --token or INTERCEPT_API_TOKEN (on the server's
    machine, as its user, the token the server wrote at its first start is used).

    \b
    Examples:
      export INTERCEPT_API_TOKEN=...        # your advocate token
      intercept advocate handoffs           # urgent first; claimed by others hidden
      intercept advocate claim 42
      intercept advocate show 42
      intercept advocate reply 42 "Hi, this is Sam. I'm here to help."
      intercept advocate notes 42 "prefers texts after 6pm"
      intercept advocate outcome 42 meeting_scheduled --note "Tue 10am, library"
      intercept advocate handback 42
    """


@advocate.command()
@api_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500),
              help="How many conversations to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
def queue(url: str | None, token: str | None, config_path: Path | None, limit: int,
          as_json: bool) -> None:
    """List conversations waiting for a human, the longest waiting first.

    WAITING is how long the person has waited for a human ('answered' when a human wrote
    last); NEW counts their messages since our last one.

    \b
    Examples:
      intercept advocate queue
      intercept advocate queue --url http://10.0.0.5:8080 --limit 10
      intercept advocate queue --json | jq '.items[].conversation.id'
    """
    page = ApiClient(url, token, config_path).call("GET", "/api/queue", params={"limit": limit})
    if as_json:
        click.echo(printable_json(page, indent=2))
        return
    if not page["items"]:
        click.echo("The queue is empty.")
        return
    now = datetime.now(UTC)
    rows = [("ID", "WAITING", "NEW", "STATUS", "CITY", "NUMBER", "OUTCOMES")]
    for item in page["items"]:
        c = item["conversation"]
        since = _when(item["waiting_since"])
        rows.append((str(c["id"]), "answered" if since is None else format_age(
            (now - since).total_seconds()), str(item["unanswered"]),
            "taken over" if c["operator"] else c["status"], c["city"] or "-",
            c["their_number"], ", ".join(item["outcomes"]) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo(printable("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                             .rstrip()))
    if page["total"] > len(page["items"]):
        click.echo(f"({page['total'] - len(page['items'])} more: use --limit)")


@advocate.command()
@api_options
@click.argument("conversation_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
def show(url: str | None, token: str | None, config_path: Path | None, conversation_id: int,
         as_json: bool) -> None:
    """Print a conversation: who, where, its outcomes and the whole transcript (UTC times).

    Each line says who wrote: 'them', 'bot', or 'human' (an advocate), and for our messages
    whether they went out. Reading a transcript is written to the audit log. Control
    characters and bidi overrides in what people wrote are shown escaped (\\x1b, \\u202e).

    \b
    Examples:
      intercept advocate show 42
      intercept advocate show 42 --json
    """
    detail = ApiClient(url, token, config_path).call("GET", f"/api/conversations/"
                                                            f"{conversation_id}")
    if as_json:
        click.echo(printable_json(detail, indent=2))
        return
    c = detail["conversation"]
    status = c["status"] + (", taken over by a human" if c["operator"] else "")
    click.echo(printable(f"Conversation {c['id']}: {c['their_number']} texting "
                         f"{c['our_number']} ({c['city'] or 'no city'}); {status}; scenario "
                         f"{c['scenario'] or '-'} v{c['version'] or '-'}"))
    if detail["tags"]:
        click.echo(printable("Tags: " + ", ".join(t["name"] for t in detail["tags"])))
    for o in detail["outcomes"]:
        note = f": {o['note']}" if o["note"] else ""
        click.echo(printable(f"Outcome: {o['kind']} by {o['author']} at {_stamp(o['at'])}{note}"))
    click.echo("")
    for line in detail["transcript"]:
        who = "them" if line["direction"] == "in" else (
            "human" if line["kind"] == "operator" else "bot")
        status = "" if line["direction"] == "in" else f"  [{line['status']}]"
        media = f"  (+{len(line['media'])} media)" if line["media"] else ""
        by = f"  (sent by {line['sent_by']})" if line.get("sent_by") else ""
        click.echo(printable(f"{_stamp(line['at'])}  {who:<5}  {line['text']}{media}{by}"
                             f"{status}"))


@advocate.command()
@api_options
@click.argument("conversation_id", metavar="ID", type=int)
@click.argument("text")
def reply(url: str | None, token: str | None, config_path: Path | None, conversation_id: int,
          text: str) -> None:
    """Text into a conversation as yourself; the bot stays silent until you hand it back.

    TEXT '-' reads the message from standard input.

    \b
    Examples:
      intercept advocate reply 42 "Hi, this is Sam. Are you safe to talk?"
      echo "We can meet tomorrow at 10." | intercept advocate reply 42 -
    """
    if text == "-":
        text = sys.stdin.read().strip()
    sent = ApiClient(url, token, config_path).call(
        "POST", f"/api/conversations/{conversation_id}/messages", body={"text": text})
    click.echo(f"Sent to conversation {conversation_id} (message {sent['id']} queued). The bot "
               f"stays silent until: intercept advocate handback {conversation_id}")


@advocate.command()
@api_options
@click.argument("conversation_id", metavar="ID", type=int)
def handback(url: str | None, token: str | None, config_path: Path | None,
             conversation_id: int) -> None:
    """Give a conversation back to the bot (it resumes where the scenario says).

    \b
    Examples:
      intercept advocate handback 42
    """
    ApiClient(url, token, config_path).call(
        "POST", f"/api/conversations/{conversation_id}/hand-back", body={})
    click.echo(f"Conversation {conversation_id} is back with the bot.")


@advocate.command()
@api_options
@click.argument("conversation_id", metavar="ID", type=int)
@click.argument("kind", type=click.Choice(OUTCOME_KINDS))
@click.option("--note", default="", help="What happened (needed for KIND other).")
def outcome(url: str | None, token: str | None, config_path: Path | None,
            conversation_id: int, kind: str, note: str) -> None:
    """Record an outcome of a conversation; several per conversation are fine.

    \b
    Examples:
      intercept advocate outcome 42 positive_conversation
      intercept advocate outcome 42 meeting_scheduled --note "Tue 10am at the library"
      intercept advocate outcome 42 other --note "moved to another city; referred there"
    """
    recorded = ApiClient(url, token, config_path).call(
        "POST", f"/api/conversations/{conversation_id}/outcomes",
        body={"kind": kind, "note": note})
    click.echo(f"Recorded {kind} on conversation {conversation_id} (outcome {recorded['id']}).")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo(printable("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                             .rstrip()))


@advocate.command()
@api_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500),
              help="How many hand-offs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
def handoffs(url: str | None, token: str | None, config_path: Path | None, limit: int,
             as_json: bool) -> None:
    """List the open hand-offs: urgent first, then the longest open.

    ID is the conversation's; WAITING is since the hand-off opened, until an advocate first
    answered ('answered'). Hand-offs another advocate claimed are not listed for you (an admin
    sees all).

    \b
    Examples:
      intercept advocate handoffs
      intercept advocate handoffs --json | jq '.items[] | select(.handoff.priority == "urgent")'
    """
    page = ApiClient(url, token, config_path).call("GET", "/api/handoffs",
                                                   params={"limit": limit})
    if as_json:
        click.echo(printable_json(page, indent=2))
        return
    if not page["items"]:
        click.echo("No open hand-offs.")
        return
    rows = [("ID", "PRIORITY", "WAITING", "CLAIMED BY", "CITY", "NUMBER", "NOTES", "REASON")]
    for item in page["items"]:
        h, c = item["handoff"], item["conversation"]
        waiting = "answered" if h["first_reply_at"] else format_age(item["waiting_seconds"])
        rows.append((str(c["id"]), h["priority"].upper() if h["priority"] == "urgent"
                     else h["priority"], waiting, h["claimed_by"] or "-", c["city"] or "-",
                     c["their_number"], str(item["notes"]), h["reason"] or "-"))
    _table(rows)
    if page["total"] > len(page["items"]):
        click.echo(f"({page['total'] - len(page['items'])} more: use --limit)")


def _changed(answer: dict[str, object], conversation_id: int, what: str) -> None:
    handoff = answer["handoff"]
    assert isinstance(handoff, dict)
    click.echo(f"Conversation {conversation_id}'s {handoff['priority']} hand-off {what}.")


@advocate.command()
@api_options
@click.argument("conversation_id", metavar="ID", type=int)
def claim(url: str | None, token: str | None, config_path: Path | None,
          conversation_id: int) -> None:
    """Claim a conversation's hand-off: only you may then text the person.

    Replying to a hand-off nobody claimed claims it too.

    \b
    Examples:
      intercept advocate claim 42
    """
    answer = ApiClient(url, token, config_path).call(
        "POST", f"/api/conversations/{conversation_id}/claim", body={})
    _changed(answer, conversation_id, "is yours")


@advocate.command()
@api_options
@click.argument("conversation_id", metavar="ID", type=int)
def release(url: str | None, token: str | None, config_path: Path | None,
            conversation_id: int) -> None:
    """Give a hand-off you claimed back to the queue (an admin may release anyone's).

    \b
    Examples:
      intercept advocate release 42
    """
    answer = ApiClient(url, token, config_path).call(
        "POST", f"/api/conversations/{conversation_id}/release", body={})
    _changed(answer, conversation_id, "is back in the queue")


@advocate.command()
@api_options(role="admin")
@click.argument("conversation_id", metavar="ID", type=int)
@click.argument("name")
def assign(url: str | None, token: str | None, config_path: Path | None, conversation_id: int,
           name: str) -> None:
    """Give a hand-off to an advocate, by their token's name (admin role).

    \b
    Examples:
      intercept advocate assign 42 sam
    """
    answer = ApiClient(url, token, config_path).call(
        "POST", f"/api/conversations/{conversation_id}/assign", body={"advocate": name})
    _changed(answer, conversation_id, f"is now {name}'s")


@advocate.command()
@api_options
@click.argument("conversation_id", metavar="ID", type=int)
@click.argument("text", required=False)
def notes(url: str | None, token: str | None, config_path: Path | None, conversation_id: int,
          text: str | None) -> None:
    """Read a conversation's internal notes, or write one (TEXT; '-' reads standard input).

    Notes are for advocates only: they are never sent to the person.

    \b
    Examples:
      intercept advocate notes 42
      intercept advocate notes 42 "prefers texts after 6pm; do not call"
    """
    client = ApiClient(url, token, config_path)
    path = f"/api/conversations/{conversation_id}/notes"
    if text is not None:
        if text == "-":
            text = sys.stdin.read().strip()
        note = client.call("POST", path, body={"text": text})
        click.echo(f"Noted on conversation {conversation_id} (note {note['id']}).")
        return
    found = client.call("GET", path)["items"]
    if not found:
        click.echo(f"No notes on conversation {conversation_id}.")
    for n in found:
        click.echo(printable(f"{_stamp(n['at'])}  {n['author']}: {n['text']}"))
