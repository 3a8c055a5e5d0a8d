"""`intercept chat`: play the buyer from the terminal."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import trio

from ..errors import InterceptError
from .options import config_option, load_config, setup_logging


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
    from ..chat import ChatError, run_chat
    from ..phone import to_e164

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
        except (ChatError, InterceptError) as exc:
            raise click.ClickException(str(exc)) from None

