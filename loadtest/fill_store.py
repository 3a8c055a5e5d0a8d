"""Fill an Intercept store with many realistic conversations, fast (for the restart benchmark).

    python -m loadtest.fill_store /tmp/big.db --conversations 1000000 [--active 0.05]

The rows are real: two template conversations are first run through an in-process server
(the shipped config and scenarios, the simulated gateway, delays off): one that ends in the
deterrence message (6 texts in, 12 replies, 9 transitions) and one still waiting for the buyer
(2 in, 3 out, a timeout armed). The store's own migrations create the schema; the templates'
rows are then copied with new ids, numbers and times by plain `executemany` in large
transactions. A share `--active` of the conversations is still active with a timer due in the
next hours (the restart must re-arm those); the rest have ended.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlite_utils
import trio

from intercept.config import load_config
from intercept.foundation.resources import bundled_root
from intercept.server import Server
from intercept.store.schema import migrate

ENDED_TEXTS = ("hey", "how much", "9pm", "my place", "r u a cop?", "ok")
ACTIVE_TEXTS = ("hey", "how much")
TABLES = ("conversations", "inbound", "outbox", "transitions", "tags")
Template = dict[str, list[dict[str, Any]]]


async def _converse(folder: Path) -> Path:
    """Run the two template conversations; the template store's path."""
    config = load_config(bundled_root() / "config" / "intercept.toml", environ={
        "INTERCEPT_HTTP_ENABLED": "false", "INTERCEPT_DELAYS_ENABLED": "false"})
    db = folder / "template.db"
    server = Server(config, store_path=db, fast=True, http=False)
    replies = trio.Semaphore(0, max_value=1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        server.gateway.subscribe(lambda message: replies.release())  # type: ignore[attr-defined]
        for their, texts in (("+12125550001", ENDED_TEXTS), ("+12125550002", ACTIVE_TEXTS)):
            for text in texts:
                await server.gateway.inject(their_number=their,  # type: ignore[attr-defined]
                                            our_number=config.numbers[0].number, text=text)
                with trio.move_on_after(5):
                    await replies.acquire()
                await trio.sleep(0.05)  # the rest of a multi-message reply
        server.stop()
    return db


def templates() -> tuple[Template, Template, list[str]]:
    """The ended and the active conversation's rows, by table; our numbers."""
    with tempfile.TemporaryDirectory(prefix="fill-store-") as tmp:
        db = trio.run(_converse, Path(tmp))
        conn = sqlite3.connect(db)
        conn.row_factory = sqlite3.Row
        found: list[Template] = []
        for conversation in (1, 2):
            rows: Template = {}
            for table in TABLES:
                key = "id" if table == "conversations" else "conversation_id"
                rows[table] = [dict(r) for r in conn.execute(
                    f"SELECT * FROM {table} WHERE {key} = ?", (conversation,))]
            found.append(rows)
        ours = [r[0] for r in conn.execute("SELECT DISTINCT our_number FROM conversations")]
        conn.close()
    ended, active = found
    if ended["conversations"][0]["status"] != "ended" or \
            active["conversations"][0]["status"] != "active":
        raise RuntimeError("the template conversations did not end up ended and active: has "
                           "the shipped scenario changed? (loadtest/fill_store.py ENDED_TEXTS)")
    return ended, active, ours


def fill(path: Path, conversations: int, *, active: float = 0.05, seed: int = 1,
         batch: int = 20_000, progress: bool = True) -> dict[str, int]:
    """Create `path` with the store's schema and `conversations` conversations; row counts."""
    ended, waiting, _ = templates()
    if path.exists():
        raise FileExistsError(f"{path} exists: fill_store only creates new stores")
    db = sqlite_utils.Database(path)
    migrate(db)
    number_info = "number_info" in db.table_names()
    db.conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    rng = random.Random(seed)
    now = time.time()
    counts = dict.fromkeys(TABLES, 0)
    started = time.monotonic()
    for first in range(1, conversations + 1, batch):
        rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
        infos: list[tuple[Any, ...]] = []
        for cid in range(first, min(first + batch, conversations + 1)):
            is_active = rng.random() < active
            template = waiting if is_active else ended
            their = f"+1{2_000_000_000 + cid:010d}"
            base = template["conversations"][0]["created_at"]
            # ended ones spread over the last 90 days, active ones over the last hour
            shift = now - rng.uniform(0, 3600 if is_active else 90 * 86400) - base
            _copy(template, cid, their, shift, rows, is_active, now, rng)
            infos.append((their, 1, "fixed_line_or_mobile", "US", "", "America/New_York", "",
                          base + shift))
        conn.execute("BEGIN")
        for table, values in rows.items():
            if values:
                columns = _COLUMNS[table]
                marks = ", ".join("?" * len(columns))
                conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                                 values)
                counts[table] += len(values)
        if number_info:
            conn.executemany("INSERT OR IGNORE INTO number_info (number, valid, type, region, "
                             "place, timezone, carrier, computed_at) VALUES (?, ?, ?, ?, ?, ?, "
                             "?, ?)", infos)
        conn.execute("COMMIT")
        if progress:
            done = min(first + batch - 1, conversations)
            print(f"\r{done:,} conversations, {time.monotonic() - started:.0f} s",
                  end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return counts


_COLUMNS: dict[str, list[str]] = {}


def _copy(template: Template, cid: int, their: str, shift: float,
          rows: dict[str, list[tuple[Any, ...]]], is_active: bool, now: float,
          rng: random.Random) -> None:
    """One conversation's rows from `template`: new id, number and times."""
    times = ("created_at", "updated_at", "received_at", "not_before", "sent_at", "at")
    for table in TABLES:
        source = template[table]
        if not source:
            continue
        columns = _COLUMNS.get(table) or [c for c in source[0] if c != "seq" and not
                                          (c == "id" and table == "transitions")]
        _COLUMNS[table] = columns
        for index, row in enumerate(source):
            new = dict(row)
            for key in times:
                if new.get(key) is not None:
                    new[key] += shift
            if table == "conversations":
                new["id"] = cid
                if is_active:
                    new["timer_at"] = now + rng.uniform(60, 3 * 3600)
            else:
                new["conversation_id"] = cid
            if "their_number" in new:
                new["their_number"] = their
            if table == "inbound":
                new["gateway_id"] = f"fill-{cid}-{index}"
            if table == "outbox":
                new["id"] = f"{cid}." + row["id"].split(".", 1)[1]
                if new.get("gateway_id"):
                    new["gateway_id"] = f"fill-out-{new['id']}"
            rows[table].append(tuple(new[c] for c in columns))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.fill_store",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  python -m loadtest.fill_store "
                                            "/tmp/big.db --conversations 1000000")
    parser.add_argument("path", type=Path, help="the new store file (must not exist)")
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--active", type=float, default=0.05,
                        help="share still active, with a timer armed (default 0.05)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        counts = fill(args.path, args.conversations, active=args.active, seed=args.seed)
    except (FileExistsError, RuntimeError) as exc:
        sys.exit(f"fill_store: {exc}")
    size = sum(p.stat().st_size for p in args.path.parent.glob(args.path.name + "*"))
    print(f"{args.path}: {counts} rows in {time.monotonic() - started:.0f} s, "
          f"{size / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
