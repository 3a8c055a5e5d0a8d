"""`intercept export` (evidence bundles for law enforcement, and `export verify`) and
`intercept purge` (retention, through the running server's admin API)."""

from __future__ import annotations

import getpass
import sqlite3
import time
from pathlib import Path

import click

from .cli_advocate import ApiClient, _options
from .cli_buyers import buyer_number, city_numbers
from .cli_report import _since
from .cli_scenario_ops import _config_option, _db_option, _open_store
from .phone import mask

AUDIT_BUSY_TIMEOUT_MS = 30_000


def audit_export(db: Path, *, detail: str, status: int = 200) -> None:
    """Write the export's audit row straight into the store: one INSERT, waiting up to 30 s
    for the server's writer (WAL lets it run beside a serving server)."""
    conn = sqlite3.connect(str(db), timeout=AUDIT_BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {AUDIT_BUSY_TIMEOUT_MS}")
        with conn:
            conn.execute("INSERT INTO audit (at, actor, role, action, conversation_id, status, "
                         "detail) VALUES (?, ?, 'cli', 'CLI intercept export', NULL, ?, ?)",
                         (time.time(), f"cli:{_user()}", status, detail))
    finally:
        conn.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@click.group(invoke_without_command=True)
@_config_option
@_db_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for the bundle.")
@click.option("--city", help="Only conversations on this city's numbers (a key of [cities]).")
@click.option("--since", callback=_since,
              help="Only conversations started on or after this date (YYYY-MM-DD, UTC).")
@click.option("--buyer", help="Only this buyer's conversations (his full number).")
@click.pass_context
def export(ctx: click.Context, config_path: Path | None, db: Path | None, out: Path | None,
           city: str | None, since: float | None, buyer: str | None) -> None:
    """Write an evidence bundle for law enforcement: buyer profiles (JSON and CSV), full
    transcripts with times, his photos, and manifest.json with the SHA-256 of every file.

    Only buyer data goes in, never outreach (victim) data. Every export is written to the
    audit log (who, filters, file count, the manifest's SHA-256). The store is read in one
    snapshot; it can run beside a serving server. Check a bundle with 'export verify'.

    \b
    Examples:
      intercept export --out evidence-2024-06 --city seattle --since 2024-05-01
      intercept export --out case-1234 --buyer +12065550199
      intercept export verify case-1234
    """
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise click.UsageError("give --out DIR (or use 'intercept export verify DIR')")
    from .buyers.export import ExportError, export_bundle
    from .buyers.profiles import selected_conversations
    from .cli import _load

    config = _load(config_path)
    ours = city_numbers(config, city)
    their = buyer_number(buyer)
    store_path = db or Path(config.store.path)
    media_dir = (store_path.parent / config.media.dir).resolve()
    filters = {"city": city, "since": None if since is None else _iso(since), "buyer": their}
    conn = _open_store(config, db)
    try:
        conn.row_factory = None
        conn.execute("BEGIN")  # one snapshot for the whole bundle
        ids = selected_conversations(conn, our_numbers=ours, since=since, number=their)
        summary = export_bundle(conn, ids, out, media_dir, filters=filters,
                                city_of={n.number: n.city for n in config.numbers})
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        conn.close()
    shown = dict(filters, buyer=None if their is None else mask(their))
    detail = (f"export to {out}: " + ", ".join(f"{k}={v}" for k, v in shown.items() if v)
              + f"; {summary.buyers} buyers, {summary.conversations} conversations, "
              f"{summary.messages} messages, {summary.media} media; {summary.files} files; "
              f"manifest sha256 {summary.manifest_sha256}")
    try:
        audit_export(store_path, detail=detail[:1000])
    except sqlite3.Error as exc:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        raise click.ClickException(f"cannot write the export's audit entry to {store_path} "
                                   f"({exc}); the bundle was removed: every export must be "
                                   "audited") from None
    click.echo(f"wrote {out}: {summary.buyers} buyers, {summary.conversations} conversations, "
               f"{summary.messages} messages, {summary.media} photos, {summary.files} files "
               "+ manifest.json")
    click.echo(f"manifest.json SHA-256: {summary.manifest_sha256}")
    for problem in summary.missing_media:
        click.echo(f"warning: a photo is not in the bundle: {problem}", err=True)


def _iso(ts: float) -> str:
    from .buyers.profiles import iso

    return iso(ts) or ""


@export.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def verify_command(folder: Path) -> None:
    """Check a bundle against its manifest.json: every file present, unchanged, and nothing
    extra. Names each missing, altered or extra file; exit status 1 if any.

    \b
    Examples:
      intercept export verify evidence-2024-06
    """
    from .buyers.export import ExportError, verify

    try:
        result = verify(folder)
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    for problem in result.problems():
        click.echo(f"{folder}: {problem}", err=True)
    if not result.valid:
        raise click.ClickException(f"{folder}: the bundle does not match its manifest "
                                   f"({len(result.problems())} problems)")
    click.echo(f"{folder}: OK, {len(result.ok)} files match manifest.json")


@click.command()
@_options
@click.option("--older-than", required=True,
              help="Delete conversations idle for longer than this (at least 1d), e.g. 180d.")
@click.option("--kind", type=click.Choice(["buyer", "outreach"]), default="buyer",
              show_default=True, help="Which conversations.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def purge(url: str | None, token: str | None, config_path: Path | None, older_than: str,
          kind: str, dry_run: bool) -> None:
    """Delete old conversations with their messages, tags, transitions and photos (retention).

    The running server deletes them (POST /api/purge, an admin token), so its caches stay
    right; their counts stay in the impact report, and the purge is audited. Opt-outs, the
    audit log and campaign records are kept.

    \b
    Examples:
      intercept purge --older-than 180d --dry-run
      intercept purge --older-than 180d
      INTERCEPT_API_TOKEN=... intercept purge --older-than 365d --kind outreach
    """
    client = ApiClient(url, token, config_path)
    result = client.call("POST", "/api/purge", body={"older_than": older_than, "kind": kind,
                                                     "dry_run": dry_run})
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {result['conversations']} {kind} conversations idle since before "
               f"{result['cutoff']}: {result['messages_in']} messages in, "
               f"{result['messages_out']} out, {result['media']} photos"
               + ("" if dry_run else f" ({result['files_deleted']} files)")
               + (f"; {result['skipped']} kept" if result["skipped"] else ""))
