"""The `intercept` command line: the `main` group, one module per command (group), and the
options and helpers they share in `options.py`."""

from __future__ import annotations

import os
import sys

import click

from . import (
    ads,
    advocate,
    backup,
    buyers,
    campaign,
    chat,
    export,
    numbers,
    report,
    scenario,
    scenario_ops,
    serve,
    token,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intercept")
def main() -> None:
    """Intercept: an SMS conversation server for anti-trafficking organisations.

    \b
    Examples:
      intercept serve                      # run on the defaults (simulated gateway)
      intercept chat --city seattle        # text the Seattle persona yourself
      intercept scenario check scenarios/*.yaml
    """


main.add_command(serve.serve)
main.add_command(chat.chat)
main.add_command(numbers.numbers)
main.add_command(scenario.scenario)
main.add_command(ads.ads)
main.add_command(advocate.advocate)
main.add_command(campaign.campaign)
main.add_command(report.report)
main.add_command(buyers.buyers)
main.add_command(export.export)
main.add_command(export.purge)
main.add_command(token.token)
main.add_command(backup.backup)
main.add_command(backup.restore)
main.add_command(backup.encrypt)
scenario.scenario.add_command(scenario_ops.reload)
scenario.scenario.add_command(scenario_ops.replay)
scenario.scenario.add_command(scenario_ops.stats)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
