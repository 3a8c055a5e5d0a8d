"""`intercept chat`: play the buyer from the terminal, against the real server parts in this
process (actor, engine, store) with the simulated gateway."""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click
import trio

from ..errors import InterceptError, StoreUnavailable
from ..foundation.terminal import printable
from .options import config_option, load_config, setup_logging

if TYPE_CHECKING:
    from ..config import Config, Number
    from ..gateways import OutboundMessage


@click.command()
@config_option
@click.option("--city", help="Text the persona of this city (a key of [cities]).")
@click.option("--to", "to_number", help="Text this one of our numbers.")
@click.option("--from", "from_number", default="+12065550199", show_default=True,
              help="The number you text from.")
@click.option("--fast", is_flag=True, help="Skip the human-like reply delays.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep the conversation in this SQLite file (default: a temporary one).")
def chat(config_path: Path | None, city: str | None, to_number: str | None, from_number: str,
         fast: bool, db: Path | None) -> None:
    """Play the buyer: text a persona from the terminal.

    The real actor, engine and store run in this process with the simulated gateway. Replies are
    printed as they would arrive. With standard input piped, each line is one message, and the
    command exits after the replies to the last one. Bytes that are not UTF-8 are sent as
    U+FFFD (a warning names the line); control characters are printed escaped (\\x1b).

    \b
    Examples:
      intercept chat --city seattle
      printf 'hey\\nhow much\\n8pm\\nmy place\\nok\\n' | intercept chat --city seattle --fast
    """
    setup_logging(0)
    config = load_config(config_path)
    from ..foundation.phone import to_e164

    if city and to_number:
        raise click.UsageError("give --city or --to, not both")
    if to_number:
        ours = to_e164(to_number)
        number = config.number(ours) if ours else None
        if number is None:
            raise click.UsageError(f"--to {to_number}: not one of our numbers (see "
                                   "'intercept numbers')")
    else:
        candidates = [n for n in config.numbers if city is None or n.city == city]
        if not candidates:
            raise click.UsageError(f"--city {city}: no number for that city; cities: "
                                   f"{', '.join(sorted(config.cities))}")
        number = candidates[0]
    theirs = to_e164(from_number)
    if theirs is None:
        raise click.UsageError(f"--from {from_number}: not a valid phone number")
    with tempfile.TemporaryDirectory(prefix="intercept-chat-") as tmp:
        store_path = db or Path(tmp) / "chat.db"
        try:
            trio.run(run_chat, config, number, theirs, store_path, fast)
        except InterceptError as exc:
            raise click.ClickException(str(exc)) from None


async def run_chat(config: Config, number: Number, their_number: str, store_path: Path,
                   fast: bool) -> None:
    from ..gateways import SimGateway
    from ..server import Server

    gateway = SimGateway(receipts=False)
    server = Server(config, gateway=gateway, store_path=store_path, fast=fast, http=False)
    persona = number.persona.name
    city = config.cities[number.city].name
    interactive = sys.stdin.isatty()

    def handset(message: OutboundMessage) -> None:
        if message.their_number == their_number and message.our_number == number.number:
            print(printable(f"{persona}: {message.text}"), flush=True)

    gateway.subscribe(handset)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        if interactive:
            print(f"You are texting {persona} ({city}, {number.number}) from {their_number}. "
                  f"{'Replies come at once.' if fast else 'Replies take a human while.'} "
                  "Ctrl-D to quit.", flush=True)
        last = None
        stdin = getattr(sys.stdin, "buffer", None)
        read = sys.stdin.readline if stdin is None else stdin.readline
        for count in itertools.count(1):
            line = await trio.to_thread.run_sync(read, abandon_on_cancel=True)
            if not line:
                break
            text = decode_line(line, count).rstrip("\r\n")
            if not text.strip():
                continue
            if not interactive:
                print(printable(f"you: {text}"), flush=True)
            try:
                last = await gateway.inject(their_number=their_number,
                                            our_number=number.number, text=text)
            except StoreUnavailable as exc:  # a full disk: like a network, say to send again
                print(f"(not sent: {exc})", flush=True)
                continue
            if not interactive:
                await server.settled(last.conversation_id, last.conv_seq)
        if last is not None:
            await server.settled(last.conversation_id, last.conv_seq)
        server.stop()


def decode_line(line: bytes | str, number: int) -> str:
    """A line of standard input as text. Bytes that are not UTF-8 (or the surrogates Python
    decodes them to) become U+FFFD, and a warning on standard error says so."""
    raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        print(f"line {number}: not valid UTF-8 (byte {exc.start + 1}); sent with the invalid "
              "bytes replaced by \ufffd", file=sys.stderr, flush=True)
        return raw.decode("utf-8", "replace")
