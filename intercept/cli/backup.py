"""`intercept backup` (an online copy of the store), `intercept restore` (put one back) and
`intercept encrypt` (turn a plain store into an SQLCipher one)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import db_option, load_config, store_config_option


@click.command()
@store_config_option
@db_option
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The new backup file (made 0600; its folder 0700 if new).")
def backup(config_path: Path | None, db: Path | None, out: Path) -> None:
    """Copy the store into a new file with SQLite's online backup API, while the server goes
    on serving. The copy is one consistent snapshot (every transaction committed when it
    started), checked (PRAGMA quick_check) before it gets its name; an encrypted store gives
    a backup encrypted with the same key. Back up the media folder and the evidence signing
    key too (docs/operations.md#backups).

    \b
    Examples:
      intercept backup --out /var/backups/intercept/intercept-2024-06-01.db
      intercept backup --db /var/lib/intercept/intercept.db --out /tmp/copy.db
    """
    from ..config import store_key
    from ..store.backup import backup as take_backup
    from ..store.opening import StoreError

    config = load_config(config_path)
    store = db or Path(config.store.path)
    try:
        info = take_backup(store, out, key=store_key(config))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up {store} to {out}: {info.bytes:,} bytes, {info.conversations:,} "
               f"conversations, schema version {info.schema_version}, {info.seconds:.1f} s")


@click.command()
@store_config_option
@db_option
@click.option("--force", is_flag=True,
              help="Replace an existing store (it is kept as <store>.replaced-<time>).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore(config_path: Path | None, db: Path | None, force: bool, file: Path) -> None:
    """Put a backup in place of the store. Stop the server first (a store open in another
    process is refused). The backup is checked (integrity, schema version, the store key)
    before anything is touched; the store it replaces is kept beside it as
    <store>.replaced-<time>, and its stale -wal and -shm are removed. Start the server
    afterwards: it replays what the backup had not finished.

    \b
    Examples:
      systemctl stop intercept
      intercept restore /var/backups/intercept/intercept-20240601T000000Z.db --force
      systemctl start intercept
    """
    from ..config import store_key
    from ..store.backup import restore as put_back
    from ..store.opening import StoreError

    config = load_config(config_path)
    store = db or Path(config.store.path)
    if store.exists() and not force:
        raise click.ClickException(f"{store} exists: stop the server and give --force to "
                                   "replace it (it is kept as <store>.replaced-<time>)")
    try:
        kept = put_back(file, store, key=store_key(config))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {file} to {store}"
               + (f"; the store it replaced is kept as {kept}" if kept else ""))


@click.command()
@store_config_option
@db_option
def encrypt(config_path: Path | None, db: Path | None) -> None:
    """Encrypt an existing plain store with the store key (INTERCEPT_STORE_KEY or
    store.key_file), in place. Stop the server first (a store open in another process is
    refused). The encrypted copy is checked with the key before it takes the store's name;
    the plain original is kept as <store>.plain-<time>: delete it (and plain backups) once
    the server runs on the encrypted store.

    \b
    Examples:
      systemctl stop intercept
      INTERCEPT_STORE_KEY=... intercept encrypt --config /etc/intercept/intercept.toml
      systemctl start intercept
      shred -u /var/lib/intercept/intercept.db.plain-*
    """
    from ..config import store_key
    from ..store.backup import encrypt as encrypt_store
    from ..store.opening import StoreError

    config = load_config(config_path)
    store = db or Path(config.store.path)
    try:
        kept = encrypt_store(store, store_key(config))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"encrypted {store}; the plain original is kept as {kept}: delete it once the "
               "server runs on the encrypted store")
