"""What the store's writer spends per text of the shipped scenario, and which B-trees it writes.

    python -m loadtest.store_bench                          # 50,000 conversations, 30,000 texts
    python -m loadtest.store_bench --conversations 20000 --texts-per-commit 10 --json

The writer alone (no server, no gateway, no trio): a fresh store gets `--conversations`
conversations of three texts each, then `--texts` more texts at random conversations are
written the way the server writes one text of the shipped buyer scenario, as the ops
`intercept/store/ops.py` defines, in the commits they fall in:

1. the text (`Ingest`), committed before the conversation steps;
2. the step (`CommitStep`: the conversation's state, a timer, a funnel transition and one reply,
   or two for `--two-replies` of the texts), in the next commit;
3. each reply marked `sending`, then `sent` with the gateway's id (an SMSC counter), then
   `delivered` by its receipt, each in a later commit.

A commit holds `--texts-per-commit` texts' worth of each kind (the server's group commit holds
what arrived during the previous commit: about 15 texts' worth with 50,000 buyers at ~1,600
texts/s, about 2 with 20,000 at ~700). Printed: the writer's CPU time per text (the ops'
statements apart from the COMMITs), the bytes it wrote per text, and, over a sample of
`--sample` texts written with checkpoints off, the pages written to the write-ahead log per
text for each table and index: the figure the schema decides (docs/performance.md, "Pages
changed per text").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from sqlite3 import Connection
from typing import Any

from intercept.store.ops import (
    CommitStep,
    FunnelMove,
    Ingest,
    MarkOutbox,
    Op,
    OutboxRow,
    Receipt,
    WriterCache,
)
from intercept.store.writer import connect
from loadtest.cli import positive

STATE = ('{"scenario":"buyer","version":1,"state":"price_check","turn":3,"started":true,'
         '"vars":{"city":"Seattle","persona":"Ana","language":"en","price":"200",'
         '"place":"downtown","time":"tonight"},"timer_at":1700000600.0,"seen":["greeting",'
         '"price","time","place"],"nudges":0,"paused":false,"outcome":null,"sample":"hey u '
         'available tonight? how much","memory":{"asked_price":true,"asked_photo":false,'
         '"asked_cop":false,"gave_place":true},"history":["greeting","availability",'
         '"price_check"],"merge":{"until":0.0,"texts":[]},"lookup":null,"webhook":null,'
         '"handoff":null,"tags":[],"counters":{"texts":3,"replies":5,"unknown":0},'
         '"confidence":0.91,"crashes":0,"resume_at":null,"extra":"padding to the ~600 '
         'bytes a shipped-scenario state takes"}')
"""A conversation's encoded state, as long as the shipped scenario's (~600 bytes)."""
TEXT = "hey u available tonight? how much for an hour"
REPLY = "hey babe yes im free later, 200 for the hour. where r u staying?"
T0 = 1_700_000_000.0


@dataclass
class Workload:
    """The ops of texts at random conversations, each kind one commit behind the one before."""

    conversations: int
    two_replies: float
    rng: random.Random
    now: float = T0
    turns: list[int] = field(default_factory=list)
    sms_id: int = 0
    steps: list[Op] = field(default_factory=list)
    to_send: list[list[str]] = field(default_factory=list)
    to_receipt: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.turns = [0] * (self.conversations + 1)

    def commits(self, texts: list[int], per_commit: int) -> Iterator[list[Op]]:
        for start in range(0, len(texts), per_commit):
            yield from self._round(texts[start:start + per_commit])

    def _round(self, batch: list[int]) -> Iterator[list[Op]]:
        ops: list[Op] = [*self.steps]
        self.steps = []
        sending, self.to_send = self.to_send, []
        for conversation in batch:
            ops.append(self._text(conversation))
        ops.extend(MarkOutbox(ids, "sending", now=self.now) for ids in sending)
        yield ops
        delivered, self.to_receipt = self.to_receipt, []
        ops = []
        for ids in sending:
            gateway_ids: list[str | None] = []
            for _ in ids:
                self.sms_id += 1
                gateway_ids.append(f"{self.sms_id:08x}")
            ops.append(MarkOutbox(ids, "sent", now=self.now, gateway_ids=gateway_ids))
            self.to_receipt.extend(g for g in gateway_ids if g is not None)
        if delivered:  # the receipts of the replies sent a round before
            ops.append(Receipt([(g, "delivered", None) for g in delivered], now=self.now))
        yield ops

    def _text(self, conversation: int) -> Ingest:
        self.now += 0.001
        self.turns[conversation] += 1
        turn = self.turns[conversation]
        our, their = f"+1206555{conversation % 50:04d}", f"+1425{conversation:07d}"
        replies = 2 if self.rng.random() < self.two_replies else 1
        rows = [OutboxRow(id=f"{conversation}.{turn}.{i}", conversation_id=conversation,
                          position=turn * 100 + i, our_number=our, their_number=their,
                          body=REPLY, not_before=self.now + 5 + i) for i in range(replies)]
        self.steps.append(CommitStep(
            conversation_id=conversation, scenario="buyer", version=1, status="active",
            outcome=None, state=STATE, processed_count=turn, timer_at=self.now + 600,
            crashes=0, outbox=rows, now=self.now, turn=turn,
            transitions=[FunnelMove(turn, "greeting", "price_check", "price")]))
        self.to_send.append([row.id for row in rows])
        # an SMSC's message id: random, as many are (the load tester's simulator too)
        return Ingest(gateway="smpp", gateway_id=f"mo-{self.rng.getrandbits(64):016x}",
                      our=our, their=their, body=TEXT, received_at=self.now)


@dataclass
class Timing:
    apply: float = 0.0
    commit: float = 0.0


def commit(conn: Connection, cache: WriterCache, ops: list[Op], timing: Timing) -> None:
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    started = time.process_time()
    for op in ops:
        op.apply(cur, cache)
    applied = time.process_time()
    cur.execute("COMMIT")
    timing.apply += applied - started
    timing.commit += time.process_time() - applied


def wal_frames(conn: Connection, wal: Path) -> Counter[str]:
    """Frames in the write-ahead log by the table or index of their page."""
    names = dict(conn.execute("SELECT pageno, name FROM dbstat"))
    data = wal.read_bytes()
    if len(data) < 32:
        return Counter()
    page_size = struct.unpack(">I", data[8:12])[0]
    frames: Counter[str] = Counter()
    for offset in range(32, len(data) - 24 - page_size + 1, 24 + page_size):
        page = struct.unpack(">I", data[offset:offset + 4])[0]
        frames[names.get(page, "(free or new)")] += 1
    return frames


def written_bytes() -> int | None:
    """Bytes this process has written (Linux), None elsewhere."""
    try:
        io = Path(f"/proc/{os.getpid()}/io").read_text()
    except OSError:
        return None
    return next(int(line.split()[1]) for line in io.splitlines() if line.startswith("wchar"))


def run(db: Path, *, conversations: int, texts: int, per_commit: int, sample: int,
        two_replies: float, seed: int, progress: bool = True) -> dict[str, Any]:
    store = connect(db)
    conn = store.conn
    cache = WriterCache()
    rng = random.Random(seed)
    work = Workload(conversations, two_replies, rng)
    warm = [c for _ in range(3) for c in range(1, conversations + 1)]
    for i, ops in enumerate(work.commits(warm, 200)):
        commit(conn, cache, ops, Timing())
        if progress and i % 500 == 0:
            print(f"  filling: {min(len(warm), i * 100)} of {len(warm)} texts",
                  file=sys.stderr, end="\r")
    if progress:
        print(f"  filled: {conversations} conversations, {len(warm)} texts", file=sys.stderr)
    measured = [rng.randint(1, conversations) for _ in range(texts)]
    timing = Timing()
    before = written_bytes()
    started = time.process_time()
    for ops in work.commits(measured, per_commit):
        commit(conn, cache, ops, timing)
    cpu = time.process_time() - started
    after = written_bytes()
    wrote = None if before is None or after is None else after - before
    # the sample: checkpoints off, so that the log holds every page the texts wrote
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    sampled = [rng.randint(1, conversations) for _ in range(sample)]
    for ops in work.commits(sampled, per_commit):
        commit(conn, cache, ops, Timing())
    frames = wal_frames(conn, Path(f"{db}-wal"))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    per_text = {name: round(count / sample, 2) for name, count in frames.most_common()}
    return {
        "conversations": conversations, "texts": texts, "texts_per_commit": per_commit,
        "two_replies": two_replies,
        "writer_cpu_us_per_text": round(1e6 * cpu / texts, 1),
        "statements_us_per_text": round(1e6 * timing.apply / texts, 1),
        "commits_us_per_text": round(1e6 * timing.commit / texts, 1),
        "kib_written_per_text": None if wrote is None else round(wrote / texts / 1024, 1),
        "sample_texts": sample,
        "wal_pages_per_text": round(sum(frames.values()) / sample, 2),
        "wal_pages_per_text_by_btree": per_text,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.store_bench",
        description="The store writer's cost per text of the shipped scenario, and the pages "
                    "each table and index adds to the write-ahead log.")
    parser.add_argument("--conversations", type=positive(int), default=50_000,
                        help="conversations in the store, three texts each before the "
                             "measure (default 50000)")
    parser.add_argument("--texts", type=positive(int), default=30_000,
                        help="texts measured, at random conversations (default 30000)")
    parser.add_argument("--texts-per-commit", type=positive(int), default=2,
                        help="texts' worth of ops in each commit (default 2)")
    parser.add_argument("--sample", type=positive(int), default=6000,
                        help="texts written with checkpoints off to count the pages each "
                             "B-tree adds to the log (default 6000)")
    parser.add_argument("--two-replies", type=float, default=0.4,
                        help="share of texts answered with two replies, the rest with one "
                             "(default 0.4: the shipped scenario's ~1.4 replies a text)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the random conversations and message ids (default 1)")
    parser.add_argument("--db", type=Path,
                        help="where to build the store (default: a temporary folder); an "
                             "existing file there is refused")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 0 <= args.two_replies <= 1:
        parser.error("--two-replies is a share between 0 and 1")
    with tempfile.TemporaryDirectory(prefix="intercept-store-bench-") as folder:
        db = args.db or Path(folder) / "bench.db"
        if db.exists():
            parser.error(f"{db} exists: give --db a path that does not (the bench builds "
                         "a store of its own)")
        figures = run(db, conversations=args.conversations, texts=args.texts,
                      per_commit=args.texts_per_commit, sample=args.sample,
                      two_replies=args.two_replies, seed=args.seed, progress=not args.json)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    wrote = figures["kib_written_per_text"]
    print(f"{figures['conversations']:,} conversations, {figures['texts']:,} texts, "
          f"{figures['texts_per_commit']} a commit")
    print(f"writer CPU per text: {figures['writer_cpu_us_per_text']} us (statements "
          f"{figures['statements_us_per_text']} us, commits {figures['commits_us_per_text']} us)"
          + ("" if wrote is None else f"; written {wrote} KiB per text"))
    print(f"pages to the write-ahead log per text: {figures['wal_pages_per_text']} "
          f"(over {figures['sample_texts']:,} texts)")
    for name, pages in figures["wal_pages_per_text_by_btree"].items():
        print(f"  {pages:6.2f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
