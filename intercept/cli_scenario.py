"""`intercept scenario ...`: the tools scenario authors use."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import ScenarioError, ScenarioErrors


@click.group()
def scenario() -> None:
    """Work with scenario files.

    \b
    Examples:
      intercept scenario check scenarios/*.yaml
    """


@scenario.command("check")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def scenario_check(files: tuple[Path, ...]) -> None:
    """Validate scenario files; print every error as file:line:col: path: message.

    Exits 1 if any file has an error.

    \b
    Examples:
      intercept scenario check scenarios/buyer-deterrence.yaml
      intercept scenario check scenarios/*.yaml
    """
    from .engine import load_scenario

    failed = False
    for path in files:
        try:
            machine = load_scenario(path)
        except ScenarioErrors as exc:
            failed = True
            for error in exc.errors:
                click.echo(error.render(), err=True)
        except ScenarioError as exc:
            failed = True
            click.echo(exc.render(), err=True)
        else:
            click.echo(f"{path}: ok ({machine.name} v{machine.version}, "
                       f"{len(machine.nodes)} states)")
    if failed:
        sys.exit(1)
