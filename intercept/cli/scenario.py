"""`intercept scenario ...`: the tools scenario authors use (check, lint, graph, schema, test)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import ScenarioError, ScenarioErrors
from ..foundation.terminal import printable
from .options import load_config, store_config_option

_FILES = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def scenario() -> None:
    """Work with scenario files.

    \b
    Examples:
      intercept scenario check scenarios/*.yaml
      intercept scenario lint --strict scenarios/*.yaml
      intercept scenario test scenarios/tests/
      intercept scenario graph scenarios/victim-outreach.yaml > outreach.mmd
    """


@scenario.command("check")
@click.argument("files", nargs=-1, required=True, type=_FILES)
def scenario_check(files: tuple[Path, ...]) -> None:
    """Validate scenario files; print every error as file:line:col: path: message.

    Exits 1 if any file has an error.

    \b
    Examples:
      intercept scenario check scenarios/buyer-deterrence.yaml
      intercept scenario check scenarios/*.yaml
    """
    from ..engine import load_scenario

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


@scenario.command("lint")
@click.argument("files", nargs=-1, required=True, type=_FILES)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@store_config_option
def scenario_lint(files: tuple[Path, ...], strict: bool, config_path: Path | None) -> None:
    """Find what would go wrong in live conversations, beyond `check`.

    Errors: everything `check` finds, dead ends (states from which a conversation can never
    finish) and loops without an exit. Warnings: unreachable states, loops without a visit
    limit, messages longer than one SMS (160 GSM-7 or 70 UCS-2 characters), no STOP handler,
    a start state that greets before the other side's first text is read (except in the
    scenarios that the outreach numbers and campaigns of --config use: they speak first).
    With --config, a webhook the scenario calls but the config does not define is an error.
    Each finding is printed as file:line:col: error|warning: path: message.

    Exits 1 if there is an error (or, with --strict, a warning); 0 otherwise.

    \b
    Examples:
      intercept scenario lint scenarios/buyer-deterrence.yaml
      intercept scenario lint --strict scenarios/*.yaml
    """
    from ..authoring.lint import lint_file

    speaks_first: set[str] = set()
    webhooks: set[str] | None = None
    if config_path is not None:
        config = load_config(config_path)
        webhooks = set(config.webhooks.calls)
        speaks_first = ({n.scenario for n in config.numbers if n.kind == "outreach"}
                        | {c.scenario for c in config.campaigns if c.scenario})
    errors = warnings = 0
    for path in files:
        findings = lint_file(path, speaks_first=speaks_first)
        if webhooks is not None and not any(f.severity == "error" for f in findings):
            findings += _unconfigured_webhooks(path, webhooks)
        for finding in findings:
            click.echo(finding.render())
        errors += sum(f.severity == "error" for f in findings)
        warnings += sum(f.severity == "warning" for f in findings)
        if not findings:
            click.echo(f"{path}: ok")
    if errors or warnings:
        click.echo(f"{errors} error{'s' * (errors != 1)}, {warnings} "
                   f"warning{'s' * (warnings != 1)}", err=True)
    if errors or (strict and warnings):
        sys.exit(1)


def _unconfigured_webhooks(path: Path, configured: set[str]) -> list[Any]:
    """Lint findings (errors) for the webhooks the scenario at `path` calls that `configured`
    lacks; the server would refuse to start with it."""
    from ..authoring.lint import Finding
    from ..engine import load_scenario
    from ..runtime.webhooks import unconfigured

    return [Finding("error", p.file, p.line, p.col, p.path, p.message, "webhook-config")
            for p in unconfigured([load_scenario(path)], configured)]


@scenario.command("graph")
@click.argument("file", type=_FILES)
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True, help="Mermaid (GitHub, mermaid.live) or Graphviz DOT.")
def scenario_graph(file: Path, fmt: str) -> None:
    """Print the state diagram of a scenario, drawn from its compiled table.

    Global handlers are drawn once, from "anywhere"; dashed arrows are timeouts, expiry, visit
    limits and handlers; "back" is where `return` goes (the interrupted state).

    \b
    Examples:
      intercept scenario graph scenarios/buyer-deterrence.yaml > buyer.mmd
      intercept scenario graph --format dot scenarios/victim-outreach.yaml | dot -Tsvg > o.svg
    """
    from ..authoring.graph import dot, mermaid
    from ..engine import load_scenario

    try:
        machine = load_scenario(file)
    except ScenarioError as exc:
        click.echo(exc.render(), err=True)
        sys.exit(1)
    click.echo(mermaid(machine) if fmt == "mermaid" else dot(machine), nl=False)


@scenario.command("schema")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@click.option("--tests", is_flag=True,
              help="The schema of transcript test files instead of scenario files.")
def scenario_schema(output: Path | None, tests: bool) -> None:
    """Print the JSON Schema of scenario files (or, with --tests, of transcript test files),
    for editors.

    With the YAML extension (yaml-language-server), start a scenario file with
    `# yaml-language-server: $schema=<path or URL of the schema>` and the editor completes
    keys, explains them and flags mistakes as you type. The shipped copies are
    docs/scenario.schema.json and docs/transcript.schema.json.

    \b
    Examples:
      intercept scenario schema > docs/scenario.schema.json
      intercept scenario schema --tests -o docs/transcript.schema.json
      intercept scenario schema -o my-scenarios/scenario.schema.json
    """
    from ..authoring.schema import schema_text, transcript_schema_text

    text = transcript_schema_text() if tests else schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")


@scenario.command("test")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("-k", "only", metavar="TEXT", help="Only the tests whose name contains TEXT.")
@click.option("--coverage", is_flag=True,
              help="Fail unless the tests of each file visit every state of its scenario.")
@click.option("-v", "--verbose", is_flag=True, help="Print every conversation.")
def scenario_test(paths: tuple[Path, ...], only: str | None, coverage: bool,
                  verbose: bool) -> None:
    """Run transcript tests: scripted conversations checked against the bot's answers.

    PATHS are test files, or folders whose *.yaml files are test files. Each test runs on the
    engine with a simulated clock (waits such as "+2h" take no time). A failure shows the
    step, what was expected, and the conversation so far. Exits 1 if a test fails.

    \b
    Examples:
      intercept scenario test scenarios/tests/
      intercept scenario test scenarios/tests/buyer-deterrence.yaml -k cop -v
      intercept scenario test --coverage scenarios/tests/*.yaml
    """
    from ..authoring.transcripts import load_suite, report, run_suite

    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
                     if path.is_dir() else [path])
    failed = False
    started = time.perf_counter()
    runs = passed = 0
    for path in files:
        try:
            suite = load_suite(path)
        except ScenarioErrors as exc:
            failed = True
            for error in exc.errors:
                click.echo(error.render(), err=True)
            continue
        except ScenarioError as exc:
            failed = True
            click.echo(exc.render(), err=True)
            continue
        outcome = run_suite(suite, only=only)
        for result in outcome.results:
            runs += 1
            if result.ok:
                passed += 1
                if verbose:
                    click.echo(f"PASS {path}:{result.test.line}: {result.title()}")
                    click.echo(printable("\n".join(f"  {line}" for line in result.log)))
            else:
                failed = True
                click.echo(printable(report(result, str(path))) + "\n")
        machine = suite.machine
        total = len(machine.nodes)
        missed = outcome.unvisited
        summary = (f"{path}: {sum(r.ok for r in outcome.results)}/{len(outcome.results)} passed "
                   f"({machine.name} v{machine.version}); states visited "
                   f"{total - len(missed)}/{total}")
        if missed:
            summary += f", not visited: {', '.join(missed)}"
            if coverage and only is None:
                failed = True
        click.echo(summary)
    click.echo(f"{passed}/{runs} passed in {(time.perf_counter() - started) * 1000:.0f} ms",
               err=True)
    if failed:
        sys.exit(1)
