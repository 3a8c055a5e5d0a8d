"""`intercept chat`: you are the buyer, in the terminal, against the real server parts."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import trio

from .config import Config, Number
from .errors import InterceptError
from .gateways import OutboundMessage, SimGateway
from .server import Server
from .store import StoreUnavailable
from .terminal import printable


class ChatError(InterceptError):
    pass


async def run_chat(config: Config, number: Number, their_number: str, store_path: Path,
                   fast: bool) -> None:
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
