"""`intercept serve`: run the server until a signal stops it."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click
import trio

from ..errors import ConfigError, InterceptError, ScenarioError
from ..foundation import collector
from .options import config_option, load_config, setup_logging

if TYPE_CHECKING:
    from ..server import Server


@click.command()
@config_option
@click.option("-v", "--verbose", count=True, help="-v for INFO logs, -vv for DEBUG.")
def serve(config_path: Path | None, verbose: int) -> None:
    """Run the server until SIGTERM or Ctrl-C, then shut down gracefully.

    \b
    Examples:
      intercept serve
      intercept serve --config /etc/intercept/intercept.toml -v
      INTERCEPT_HTTP_LISTEN=0.0.0.0:8080 intercept serve
    With the simulated gateway, text a persona over HTTP:
      curl -s localhost:8080/sim/messages \\
        -d '{"from": "+12065550199", "to": "+12065550100", "text": "hey u there?"}'
    """
    setup_logging(max(verbose, 1))
    config = load_config(config_path)
    from ..server import Server

    # Many long-lived objects: collect the young generation less often, so that per-message
    # objects die first (intercept/foundation/collector.py says why and how it was chosen).
    collector.tune()

    async def run() -> None:
        try:
            server = Server(config, own_process=True)
        except InterceptError as exc:
            raise click.ClickException(str(exc)) from None
        async with trio.open_nursery() as nursery:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT,
                                           signal.SIGHUP) as signals:
                # Server(own_process=True): the number lookup data is loaded before intake,
                # the loop's lag is sampled, and once start-up and recovery are done, what is
                # alive (modules, config, compiled scenarios, lookup data, caches) is collected
                # and frozen out of the collector's walks (intercept/foundation/collector.py)
                await nursery.start(server.run)
                click.echo(f"intercept: serving {len(config.numbers)} numbers "
                           f"(gateway {config.gateway.display_url}, store {config.store.path}"
                           + (f", http {' '.join(server.http_addresses)}"
                              if server.http_addresses else "") + ")", err=True)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        nursery.start_soon(_reload_on_hangup, server)
                        continue
                    server.stop()
                    break

    try:
        trio.run(run)
    except BaseExceptionGroup as group:
        # Binding the HTTP port is the one OSError expected at start-up; say it plainly.
        failure = _only_leaf(group)
        if isinstance(failure, OSError):
            raise click.ClickException(f"http.listen: cannot listen on {config.http.listen}: "
                                       f"{failure.strerror or failure}") from None
        if isinstance(failure, click.ClickException):
            raise failure from None
        if isinstance(failure, InterceptError):  # e.g. the SMSC refused our bind
            raise click.ClickException(str(failure)) from None
        raise


async def _reload_on_hangup(server: Server) -> None:
    """SIGHUP: reload the scenarios and the config's numbers and cities; a broken folder or
    config file is refused and the running versions and config stay."""
    try:
        reloaded = await server.reload()
    except ScenarioError as exc:
        logging.getLogger("intercept").error("scenario reload refused; the running versions "
                                             "stay:\n%s", exc)
    except ConfigError as exc:
        logging.getLogger("intercept").error("config reload refused; the running config and "
                                             "scenario versions stay:\n%s", exc)
    else:
        click.echo(f"intercept: scenarios reloaded: {reloaded.summary()}", err=True)


def _only_leaf(exc: BaseException) -> BaseException:
    """The single exception inside nested exception groups (or the group if there are more)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc

