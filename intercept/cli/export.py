"""`intercept export` (evidence bundles for law enforcement, and `export verify`) and
`intercept purge` (retention, through the running server's admin API)."""

from __future__ import annotations

from pathlib import Path

import click

from ..foundation.phone import mask
from .options import (
    ApiClient,
    api_options,
    audit,
    buyer_number,
    city_numbers,
    db_option,
    load_config,
    open_store_readonly,
    since,
    store_config_option,
)


@click.group(invoke_without_command=True)
@store_config_option
@db_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder for the bundle.")
@click.option("--city", help="Only conversations on this city's numbers (a key of [cities]).")
@click.option("--since", callback=since,
              help="Only conversations started on or after this date (YYYY-MM-DD, UTC).")
@click.option("--buyer", help="Only this buyer's conversations (his full number).")
@click.pass_context
def export(ctx: click.Context, config_path: Path | None, db: Path | None, out: Path | None,
           city: str | None, since: float | None, buyer: str | None) -> None:
    """Write an evidence bundle for law enforcement: buyer profiles (JSON and CSV), full
    transcripts with times, his photos, and manifest.json with the SHA-256 of every file,
    signed (manifest.sig) with the organisation's Ed25519 key (evidence.signing_key, made at
    the first export; its fingerprint is printed and audited).

    Only buyer data goes in, never outreach (victim) data. Every export is written to the
    audit log (who, filters, file count, the manifest's SHA-256). The store is read in one
    snapshot; it can run beside a serving server. Check a bundle with 'export verify'.

    \b
    Examples:
      intercept export --out evidence-2024-06 --city seattle --since 2024-05-01
      intercept export --out case-1234 --buyer +12065550199
      intercept export verify case-1234 --public-key evidence-signing.key.pub
    """
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise click.UsageError("give --out DIR (or use 'intercept export verify DIR')")
    from ..buyers.export import ExportError, export_bundle
    from ..buyers.profiles import selected_conversations
    from ..buyers.signing import SigningError, load_or_create_key, public_key_path
    from ..store.reads import begin_snapshot

    config = load_config(config_path)
    ours = city_numbers(config, city)
    their = buyer_number(buyer)
    store_path = db or Path(config.store.path)
    media_dir = (store_path.parent / config.media.dir).resolve()
    key_path = (store_path.parent / config.evidence.signing_key).resolve()
    filters = {"city": city, "since": None if since is None else _iso(since), "buyer": their}
    conn = open_store_readonly(config, db)
    try:
        key, created = load_or_create_key(key_path)
        conn.row_factory = None
        begin_snapshot(conn)  # one snapshot for the whole bundle
        ids = selected_conversations(conn, our_numbers=ours, since=since, number=their)
        summary = export_bundle(conn, ids, out, media_dir, filters=filters, key=key,
                                city_of={n.number: n.city for n in config.numbers})
    except (ExportError, SigningError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        conn.close()
    shown = dict(filters, buyer=None if their is None else mask(their))
    detail = (f"export to {out}: " + ", ".join(f"{k}={v}" for k, v in shown.items() if v)
              + f"; {summary.buyers} buyers, {summary.conversations} conversations, "
              f"{summary.messages} messages, {summary.media} media; {summary.files} files; "
              f"manifest sha256 {summary.manifest_sha256}; signed by {summary.signer}"
              + ("; new signing key" if created else ""))
    from ..store.opening import DB_ERRORS, StoreError

    try:
        audit(config, db, "CLI intercept export", detail[:1000])
    except (StoreError, *DB_ERRORS) as exc:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        raise click.ClickException(f"cannot write the export's audit entry to {store_path} "
                                   f"({exc}); the bundle was removed: every export must be "
                                   "audited") from None
    click.echo(f"wrote {out}: {summary.buyers} buyers, {summary.conversations} conversations, "
               f"{summary.messages} messages, {summary.media} photos, {summary.files} files "
               "+ manifest.json")
    click.echo(f"manifest.json SHA-256: {summary.manifest_sha256}")
    if created:
        click.echo(f"made the organisation's evidence signing key {key_path} (keep it secret, "
                   f"back it up); give its public key {public_key_path(key_path)} to whoever "
                   "checks bundles")
    click.echo(f"signed by the key of fingerprint {summary.signer}")
    for problem in summary.missing_media:
        click.echo(f"warning: a photo is not in the bundle: {problem}", err=True)


def _iso(ts: float) -> str:
    from ..buyers.profiles import iso

    return iso(ts) or ""


@export.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False, path_type=Path),
              help="The organisation's public key (the .pub beside evidence.signing_key): "
              "the manifest must be signed by it.")
@click.option("--fingerprint", help="Or the SHA-256 fingerprint (hex) of that key, as the "
              "export printed it.")
def verify_command(folder: Path, public_key: Path | None, fingerprint: str | None) -> None:
    """Check a bundle: the signature of manifest.json (manifest.sig), the counts, and every
    file present, unchanged, and nothing extra. Names each problem; exit status 1 if any.

    Without --public-key or --fingerprint the signature only proves the manifest is unchanged
    since some key signed it, not that the organisation's key did: the output says so.

    \b
    Examples:
      intercept export verify evidence-2024-06 --public-key evidence-signing.key.pub
      intercept export verify evidence-2024-06 --fingerprint 3f5a…(64 hex digits)
    """
    from ..buyers.export import ExportError, verify
    from ..buyers.signing import SigningError, load_public_key
    from ..buyers.signing import fingerprint as fingerprint_of

    if public_key is not None and fingerprint is not None:
        raise click.UsageError("give --public-key or --fingerprint, not both")
    trusted = fingerprint.strip().lower() if fingerprint else None
    if trusted is not None and (len(trusted) != 64
                                or any(c not in "0123456789abcdef" for c in trusted)):
        raise click.BadParameter("a fingerprint is 64 hex digits (the SHA-256 the export "
                                 "printed)", param_hint="--fingerprint")
    try:
        if public_key is not None:
            trusted = fingerprint_of(load_public_key(public_key))
        result = verify(folder, trusted=trusted)
    except (ExportError, SigningError) as exc:
        raise click.ClickException(str(exc)) from None
    for problem in result.problems():
        click.echo(f"{folder}: {problem}", err=True)
    if not result.valid:
        raise click.ClickException(f"{folder}: the bundle does not match its manifest "
                                   f"({len(result.problems())} problems)")
    click.echo(f"{folder}: OK, {len(result.ok)} files match manifest.json, signed by the key "
               f"of fingerprint {result.signer}")
    if not result.trusted:
        click.echo(f"{folder}: warning: the signature was not checked against a trusted key "
                   "(give --public-key or --fingerprint): anyone could have re-signed an "
                   "edited bundle with a key of their own", err=True)


@click.command()
@api_options
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
