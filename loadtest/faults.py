"""The fault matrix: attack a real `intercept serve` on loopback and check what it promises.

    python -m loadtest.faults              # every case, a table at the end
    python -m loadtest.faults --quick      # the quick subset (`make test` runs it)
    python -m loadtest.faults --case kill-9 --case webhook-tampered --json

Each case starts its own server (a generated config in a temporary folder, the echo scenario,
delays off), does one hostile or faulty thing to it, and reads what happened from the outside:
HTTP answers, what the simulated phones or the fake provider received, the store file after
the server stopped. A row says what the case expects, what it observed and one figure. The exit
status is 0 when every row passed, 1 otherwise, 2 when the harness itself could not run.
docs/reliability.md explains every case and keeps the last full table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from intercept.resources import bundled_root
from loadtest.fake_provider import FakeTwilio
from loadtest.target import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SCENARIO_NAME,
    WEBHOOK_PATH,
    ServerProcess,
    free_port,
    our_numbers,
    to_toml,
    write_config,
)

OUR = our_numbers(1)[0]


@dataclass
class Row:
    """One line of the table."""

    case: str
    expected: str
    observed: str
    figure: str
    ok: bool
    seconds: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    quick: bool
    run: Callable[[Path], Awaitable[Row]]


CASES: dict[str, Case] = {}


def case(name: str, expected: str, *, quick: bool = False
         ) -> Callable[[Callable[[Path], Awaitable[tuple[bool, str, str]]]],
                       Callable[[Path], Awaitable[Row]]]:
    """Register a case: an async function of a fresh folder giving (ok, observed, figure)."""
    def register(fn: Callable[[Path], Awaitable[tuple[bool, str, str]]]
                 ) -> Callable[[Path], Awaitable[Row]]:
        async def run(folder: Path) -> Row:
            ok, observed, figure = await fn(folder)
            return Row(name, expected, observed, figure, ok)
        CASES[name] = Case(name, expected, quick, run)
        return run
    return register


# -- a server under test -----------------------------------------------------------------------


@dataclass
class Served:
    """A running server: its base URL, folder, store path and process."""

    base: str
    folder: Path
    db: Path
    process: ServerProcess
    fake: FakeTwilio | None = None
    sim_log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def replies(self) -> list[dict[str, Any]]:
        """What the simulated phones received (the sim gateway's log), in order."""
        if self.sim_log is None or not self.sim_log.exists():
            return []
        return [json.loads(line) for line in self.sim_log.read_text().splitlines() if line]


def sim_config(folder: Path, port: int, **extra: dict[str, Any]) -> dict[str, Any]:
    """A config on the simulated gateway; `extra` sections are merged in."""
    config: dict[str, Any] = {
        "gateway": {"url": "sim://", "sim_log": str(folder / "handsets.jsonl")},
        "store": {"path": str(folder / "intercept.db")},
        "http": {"listen": f"127.0.0.1:{port}"},
        "delays": {"enabled": False},
        "scenarios": {"dir": str(folder / "scenarios")},
        "media": {"dir": str(folder / "media")},
        "cities": {"loadtown": {"name": "Loadtown", "link": "https://help.example/load"}},
        "numbers": [{"number": OUR, "city": "loadtown", "scenario": SCENARIO_NAME,
                     "persona": {"name": "Jo"}}],
    }
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return config


def provider_config(folder: Path, port: int, api: str) -> dict[str, Any]:
    """A config on the Twilio gateway, REST out to the fake provider at `api`."""
    config = sim_config(folder, port)
    config["gateway"] = {"url": f"twilio://{ACCOUNT_SID}@127.0.0.1", "api_url": api,
                         "public_url": f"http://127.0.0.1:{port}", "http2": False,
                         "rate_per_number": 1000.0}
    return config


@contextlib.asynccontextmanager
async def serving(folder: Path, config: dict[str, Any], *, env: dict[str, str] | None = None,
                  fake: FakeTwilio | None = None) -> AsyncIterator[Served]:
    """Write `config` into `folder`, run `intercept serve` on it until the block ends."""
    path = write_config(config, folder)
    path.write_text(to_toml(config), encoding="utf-8")
    environment = dict(env or {})
    if fake is not None:
        environment["INTERCEPT_GATEWAY_AUTH_TOKEN"] = AUTH_TOKEN
    process = ServerProcess(path, environment)
    base = "http://" + config["http"]["listen"]
    log = config["gateway"].get("sim_log")
    served = Served(base, folder, Path(config["store"]["path"]), process, fake,
                    Path(log) if log else None, environment)
    try:
        await process.wait_healthy(base, timeout=60)
        yield served
    finally:
        served.process.stop()  # the one running now (a case may have restarted it)


async def restart(served: Served) -> Served:
    """Start the same server again on the same config and store (after a kill or a stop)."""
    process = ServerProcess(served.process.config_path, served.env)
    await process.wait_healthy(served.base, timeout=60)
    served.process = process
    return served


async def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await trio.sleep(step)
    return True


def settled(db: Path) -> bool:
    """Every stored inbound message processed and nothing left to send."""
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        unprocessed = conn.execute(
            "SELECT count(*) FROM conversations c WHERE c.processed_count < "
            "(SELECT max(conv_seq) FROM inbound i WHERE i.conversation_id = c.id)").fetchone()[0]
        unsent = conn.execute("SELECT count(*) FROM outbox WHERE status IN "
                              "('queued', 'sending')").fetchone()[0]
    return unprocessed == 0 and unsent == 0


def count(db: Path, sql: str, *args: Any) -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


async def text(client: httpx.AsyncClient, base: str, their: str, body: str,
               message_id: str | None = None) -> int:
    """A simulated phone texts our number; the HTTP status (0 when no answer came)."""
    payload = {"from": their, "to": OUR, "text": body}
    if message_id is not None:
        payload["id"] = message_id
    try:
        return (await client.post(f"{base}/sim/messages", json=payload)).status_code
    except httpx.HTTPError:
        return 0


# -- the cases ---------------------------------------------------------------------------------


@case("kill-9", "every acknowledged text answered exactly once after SIGKILL mid-traffic and "
      "a restart", quick=True)
async def kill_under_load(folder: Path) -> tuple[bool, str, str]:
    phones = [f"+1206555{3000 + i:04d}" for i in range(60)]
    turns = 4
    acked: set[str] = set()
    config = sim_config(folder, free_port())
    async with serving(folder, config) as served, httpx.AsyncClient(timeout=5) as client:
        async def buyer(their: str, first: int, last: int) -> None:
            for turn in range(first, last):
                key = f"{their}-{turn}"
                if await text(client, served.base, their, key, key) != 200:
                    return
                acked.add(key)

        async with trio.open_nursery() as nursery:
            for their in phones:
                nursery.start_soon(buyer, their, 0, turns)
            await wait_for(lambda: len(acked) >= len(phones) * turns // 2, 30, 0.001)
            served.process.kill()
        killed_at = len(acked)
        await restart(served)
        resent = 0
        async with trio.open_nursery() as nursery:  # each phone retries what was not acked
            for their in phones:
                missing = [t for t in range(turns) if f"{their}-{t}" not in acked]
                resent += len(missing)
                if missing:
                    nursery.start_soon(buyer, their, missing[0], turns)
        if not await wait_for(lambda: settled(served.db), 30):
            return False, "replies were still unsent 30 s after the restart", ""
        answers: dict[str, int] = {}
        for record in served.replies():
            quoted = record["text"].removeprefix("re: ")
            answers[quoted] = answers.get(quoted, 0) + 1
    unanswered = sorted(acked - answers.keys())
    twice = sorted(k for k, n in answers.items() if n > 1)
    observed = (f"{len(acked)} acked ({killed_at} before the kill), "
                f"{len(unanswered)} unanswered, {len(twice)} answered twice")
    return (not unanswered and not twice and len(acked) == len(phones) * turns), observed, \
        f"{resent} texts re-sent after the restart"


@contextlib.asynccontextmanager
async def provider_server(folder: Path) -> AsyncIterator[Served]:
    """A server on the Twilio gateway with the fake provider beside it (in this process)."""
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        config = provider_config(folder, free_port(), fake.base_url)
        try:
            async with serving(folder, config, fake=fake) as served:
                yield served
        finally:
            nursery.cancel_scope.cancel()


@case("webhook-duplicate", "a webhook delivered 3 times makes one message and one reply",
      quick=True)
async def webhook_duplicate(folder: Path) -> tuple[bool, str, str]:
    async with provider_server(folder) as served:
        fake, url = served.fake, served.base + WEBHOOK_PATH
        assert fake is not None
        statuses = [(await fake.send_inbound(url, from_="+12065553999", to=OUR,
                                             body="hey u there"))[0]]
        sid = next(iter(fake.messages))
        for _ in range(2):
            statuses.append((await fake.send_inbound(url, from_="+12065553999", to=OUR,
                                                     body="hey u there", message_sid=sid))[0])
        await wait_for(lambda: settled(served.db) and len(fake.sent) >= 1, 15)
        await trio.sleep(0.5)  # a second reply, if there were one, would show by now
        stored = count(served.db, "SELECT count(*) FROM inbound")
        replies = len(fake.sent)
    ok = statuses == [200, 200, 200] and stored == 1 and replies == 1
    return ok, f"answers {statuses}; {stored} stored, {replies} reply sent", "3 deliveries"


@case("webhook-tampered", "a webhook whose body, signature or URL was changed is refused "
      "(403) and nothing is stored", quick=True)
async def webhook_tampered(folder: Path) -> tuple[bool, str, str]:
    from intercept.gateways.twilio.signature import compute_signature

    async with provider_server(folder) as served, httpx.AsyncClient(timeout=5) as client:
        fake, url = served.fake, served.base + WEBHOOK_PATH
        assert fake is not None
        message = fake.record_missed_inbound(from_="+12065553998", to=OUR, body="hi")
        params = fake.webhook_params(message)
        good = compute_signature(AUTH_TOKEN, url, params)
        changed = [(k, "hi, changed" if k == "Body" else v) for k, v in params]
        attempts = {
            "body changed": (changed, good),
            "no signature": (params, None),
            "signed with another token": (params, compute_signature("x" * 32, url, params)),
            "signed for another URL": (params, compute_signature(AUTH_TOKEN, url + "x",
                                                                 params)),
        }
        answers = {}
        for name, (form, signature) in attempts.items():
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            if signature is not None:
                headers["X-Twilio-Signature"] = signature
            response = await client.post(url, data=dict(form), headers=headers)
            answers[name] = response.status_code
        stored = count(served.db, "SELECT count(*) FROM inbound")
    refused = [name for name, status in answers.items() if status == 403]
    ok = len(refused) == len(attempts) and stored == 0
    return ok, f"{len(refused)}/{len(attempts)} refused with 403; {stored} stored", \
        ", ".join(f"{k}: {v}" for k, v in answers.items())


def shipped_persona(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with our number on the shipped buyer-deterrence scenario (fuzzy intents)."""
    config["scenarios"] = {"dir": str(bundled_root() / "scenarios")}
    config["numbers"] = [{"number": OUR, "city": "loadtown", "scenario": "buyer-deterrence",
                          "persona": {"name": "Jasmine", "age": 23, "style": "casual"}}]
    return config


@case("long-sms", "1,600-character texts with 1,000-letter words, to the shipped persona: "
      "answered, /healthz under 1 s, memory grows < 50 MiB", quick=True)
async def long_sms(folder: Path) -> tuple[bool, str, str]:
    config = shipped_persona(sim_config(folder, free_port()))
    async with serving(folder, config) as served, httpx.AsyncClient(timeout=30) as client:
        await text(client, served.base, "+12065554999", "hey u available?")  # warm: lookups
        await wait_for(lambda: settled(served.db), 30)
        rss_before = served.process.sample().get("rss_mib", 0.0)
        body = ("hey " + "a" * 1000 + " how much " + "pricee" * 40 + " " + "b" * 300)[:1600]
        worst = 0.0

        async def probe() -> None:
            nonlocal worst
            for _ in range(40):
                started = time.monotonic()
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(f"{served.base}/healthz")
                worst = max(worst, time.monotonic() - started)
                await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe)
            statuses = [await text(client, served.base, f"+1206555{4000 + i:04d}",
                                   body.replace("a", "ae"[i % 2], 1 + i))
                        for i in range(5)]
        answered = await wait_for(lambda: settled(served.db), 30)
        rss_after = served.process.sample().get("rss_mib", 0.0)
    grew = rss_after - rss_before
    ok = statuses == [200] * 5 and answered and worst < 1.0 and grew < 50
    return ok, (f"answers {sorted(set(statuses))}, {'all' if answered else 'not all'} "
                f"processed; worst /healthz {worst * 1000:.0f} ms"), \
        f"RSS {rss_before:.0f} -> {rss_after:.0f} MiB"


# -- running -----------------------------------------------------------------------------------


async def run_cases(names: list[str], root: Path, progress: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        progress(f"{name} ...")
        started = time.monotonic()
        try:
            row = await CASES[name].run(folder)
        except Exception as exc:  # a case that could not run is a failed row, not a crash
            row = Row(name, CASES[name].expected, f"the case could not run: {exc!r}", "", False)
        row.seconds = round(time.monotonic() - started, 1)
        progress(f"{name}: {'pass' if row.ok else 'FAIL'} ({row.seconds} s)")
        rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    """A Markdown table of the rows (docs/reliability.md keeps one)."""
    lines = ["| case | expected | observed | figure | result |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [row.case, row.expected, row.observed, row.figure,
                 "pass" if row.ok else "**FAIL**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.faults", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="cases:\n" + "\n".join(f"  {c.name:<22} {'(quick) ' if c.quick else ''}"
                                      f"{c.expected}" for c in CASES.values()))
    parser.add_argument("--quick", action="store_true", help="only the quick subset")
    parser.add_argument("--case", action="append", default=[], metavar="NAME",
                        help="run only this case (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each case's folder (config, store, logs) under DIR")
    args = parser.parse_args(argv)
    unknown = [name for name in args.case if name not in CASES]
    if unknown:
        parser.error(f"unknown case {', '.join(unknown)}; the cases are {', '.join(CASES)}")
    names = args.case or [c.name for c in CASES.values() if c.quick or not args.quick]

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="faults-", dir=args.keep))
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faults-")))
        rows = trio.run(run_cases, names, root, progress)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        print(table(rows))
        failed = [row.case for row in rows if not row.ok]
        print(f"\nfault matrix: {len(rows) - len(failed)} of {len(rows)} cases as expected"
              + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
