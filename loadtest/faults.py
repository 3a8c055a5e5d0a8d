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
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from intercept.foundation.resources import bundled_root
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
    """One line of the table. `ok` is None when the case could not run here (skipped)."""

    case: str
    expected: str
    observed: str
    figure: str
    ok: bool | None
    seconds: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    quick: bool
    run: Callable[[Path], Awaitable[Row]]


CASES: dict[str, Case] = {}


def case(name: str, expected: str, *, quick: bool = False
         ) -> Callable[[Callable[[Path], Awaitable[tuple[bool | None, str, str]]]],
                       Callable[[Path], Awaitable[Row]]]:
    """Register a case: an async function of a fresh folder giving (ok, observed, figure);
    ok None: it cannot run on this machine (observed says why)."""
    def register(fn: Callable[[Path], Awaitable[tuple[bool | None, str, str]]]
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
        await wait_for(lambda: settled(served.db)
                       and count(served.db, "SELECT count(*) FROM number_info") >= 1, 30)
        await trio.sleep(1.0)
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


def run_cli(config_path: Path, *args: str, stdin: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 60, config: bool = True
            ) -> subprocess.CompletedProcess[bytes]:
    """`intercept ARGS --config CONFIG` in a subprocess (the CLI as an operator runs it)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERCEPT_")}
    options = ["--config", str(config_path)] if config else []
    return subprocess.run([sys.executable, "-m", "intercept", *args, *options], input=stdin,
                          capture_output=True, env={**clean, **(env or {})}, timeout=timeout,
                          cwd=config_path.parent, check=False)


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


@case("admin-behind-proxy", "with no token configured, a request relayed by a local proxy is "
      "refused (401); repeated bad tokens are locked out (429), counted and audited", quick=True)
async def admin_behind_proxy(folder: Path) -> tuple[bool, str, str]:
    config = sim_config(folder, free_port())
    async with serving(folder, config) as served, httpx.AsyncClient(timeout=5) as client:
        proxied = await client.post(f"{served.base}/api/purge", json={"older_than": "180d"},
                                    headers={"X-Forwarded-For": "198.51.100.7",
                                             "Authorization": "Bearer anything-at-all-000"})
        statuses = [(await client.get(f"{served.base}/api/conversations", headers={
            "Authorization": f"Bearer wrong-token-{i:012d}"})).status_code for i in range(12)]
        metrics = (await client.get(f"{served.base}/metrics")).text
    audited = count(served.db, "SELECT count(*) FROM audit WHERE status = 401")
    failures = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("intercept_api_auth_failures_total{"))
    ok = (proxied.status_code == 401 and statuses[-1] == 429 and audited >= 10
          and failures >= 12)
    return ok, (f"proxied purge: {proxied.status_code}; bad tokens: "
                f"{statuses.count(401)}x401 then {statuses.count(429)}x429; {audited} audited"), \
        f"{failures:.0f} failures counted"


@case("sim-not-ours", "/sim/messages refuses a 'to' that is not ours and a 'from' that is ours "
      "(400), storing nothing", quick=True)
async def sim_not_ours(folder: Path) -> tuple[bool, str, str]:
    config = sim_config(folder, free_port())
    async with serving(folder, config) as served, httpx.AsyncClient(timeout=5) as client:
        wrong_to = await client.post(f"{served.base}/sim/messages", json={
            "from": "+12065553001", "to": "+12065559876", "text": "hi"})
        from_ours = await client.post(f"{served.base}/sim/messages", json={
            "from": OUR, "to": OUR, "text": "hi"})
    stored = count(served.db, "SELECT count(*) FROM inbound")
    ok = wrong_to.status_code == 400 and from_ours.status_code == 400 and stored == 0
    return ok, f"answers {wrong_to.status_code}, {from_ours.status_code}; {stored} stored", ""


@case("file-modes", "under umask 022 the store, its -wal and -shm, the CLI token and the media "
      "folder are private (0600 / 0700)", quick=True)
async def file_modes(folder: Path) -> tuple[bool, str, str]:
    config = sim_config(folder, free_port())
    old = os.umask(0o022)
    try:
        async with serving(folder, config) as served, httpx.AsyncClient(timeout=5) as client:
            await text(client, served.base, "+12065553002", "hey")
            await wait_for(lambda: settled(served.db), 15)
            files = [served.db, Path(f"{served.db}-wal"), Path(f"{served.db}-shm"),
                     Path(f"{served.db}.cli-token")]
            modes = {p.name: mode(p) for p in files if p.exists()}
            media = folder / "media"
            if media.exists():
                modes["media/"] = mode(media)
    finally:
        os.umask(old)
    wanted = {name: ("0o700" if name.endswith("/") else "0o600") for name in modes}
    ok = len(modes) >= 4 and modes == wanted
    return ok, ", ".join(f"{k} {v[2:]}" for k, v in modes.items()), "umask 022"


@case("second-server", "a second server on the same store exits at once with a sentence naming "
      "the first one's pid", quick=True)
async def second_server(folder: Path) -> tuple[bool, str, str]:
    config = sim_config(folder, free_port())
    async with serving(folder, config) as served:
        other = dict(config, http={"listen": f"127.0.0.1:{free_port()}"})
        second = folder / "second.toml"
        second.write_text(to_toml(other), encoding="utf-8")
        started = time.monotonic()
        result = await trio.to_thread.run_sync(lambda: run_cli(second, "serve"))
        took = time.monotonic() - started
        pid = served.process.pid
    err = result.stderr.decode(errors="replace")
    ok = result.returncode != 0 and str(pid) in err and "Traceback" not in err
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return ok, f"exit {result.returncode}: {last[:140]}", f"refused in {took:.1f} s"


@case("corrupt-store", "a store with zeroed pages: `intercept serve` exits with one sentence "
      "(restore from backup), no traceback", quick=True)
async def corrupt_store(folder: Path) -> tuple[bool, str, str]:
    config = sim_config(folder, free_port())
    async with serving(folder, config) as served, httpx.AsyncClient(timeout=5) as client:
        for i in range(20):
            await text(client, served.base, f"+1206555{5000 + i:04d}", "hello there " * 20)
        await wait_for(lambda: settled(served.db), 15)
    db = served.db
    data = bytearray(db.read_bytes())
    page = 4096
    data[page:len(data)] = bytes(len(data) - page)  # every page after the first
    db.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    result = await trio.to_thread.run_sync(lambda: run_cli(served.process.config_path,
                                                           "serve", timeout=30))
    err = result.stderr.decode(errors="replace").strip().splitlines()
    errors = [line for line in err if line.startswith("Error:")]
    ok = (result.returncode != 0 and not any("Traceback" in line for line in err)
          and len(errors) == 1 and "damaged" in errors[0])
    return ok, f"exit {result.returncode}: {(errors or err or [''])[-1][:140]}", \
        f"{len(err)} lines on stderr"


async def _slow_body(address: tuple[str, int], closed: list[float], stop: trio.Event) -> None:
    started = time.monotonic()
    try:
        stream = await trio.open_tcp_stream(*address)
    except OSError:
        closed.append(time.monotonic() - started)
        return
    async with stream:
        try:
            await stream.send_all(b"POST /sim/messages HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Type: application/json\r\n"
                                  b"Content-Length: 100000\r\n\r\n")
            while not stop.is_set():
                await stream.send_all(b" ")
                with trio.move_on_after(1.0):
                    if await stream.receive_some(65536) == b"":
                        break
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
    closed.append(time.monotonic() - started)


@case("slow-clients", "1,000 clients that send a body a byte a second are closed at the body "
      "deadline; /healthz keeps answering within 1 s")
async def slow_clients(folder: Path) -> tuple[bool, str, str]:
    port = free_port()
    config = sim_config(folder, port, http={"body_timeout": "2s", "header_timeout": "2s",
                                            "max_connections": 200})
    clients = 1000
    async with serving(folder, config) as served, httpx.AsyncClient(timeout=5) as client:
        closed: list[float] = []
        stop = trio.Event()
        worst = 0.0
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(_slow_body, ("127.0.0.1", port), closed, stop)
            for _ in range(30):
                await trio.sleep(0.2)
                started = time.monotonic()
                try:
                    ok_health = (await client.get(f"{served.base}/healthz")).status_code == 200
                except httpx.HTTPError:
                    ok_health = False
                worst = max(worst, time.monotonic() - started if ok_health else 99.0)
            await wait_for(lambda: len(closed) >= clients, 20)
            stop.set()
    held = sorted(closed)
    ok = len(held) == clients and held[-1] < 15 and worst < 1.0
    return ok, (f"{len(held)} of {clients} closed, median after {held[len(held) // 2]:.1f} s; "
                f"worst /healthz {worst * 1000:.0f} ms"), "body_timeout 2 s, max 200"


def _age(db: Path, days: float) -> None:
    """Move every timestamp of the store `days` into the past (the server is stopped)."""
    shift = days * 86400
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE conversations SET created_at = created_at - ?, "
                     "updated_at = updated_at - ?", (shift, shift))
        conn.execute("UPDATE inbound SET received_at = received_at - ?", (shift,))
        conn.execute("UPDATE outbox SET created_at = created_at - ?, "
                     "sent_at = sent_at - ?", (shift, shift))


@case("replay-after-purge", "a webhook replayed after its conversation was purged is "
      "acknowledged and dropped: no new conversation, no second reply")
async def replay_after_purge(folder: Path) -> tuple[bool, str, str]:
    async with provider_server(folder) as served:
        fake, url = served.fake, served.base + WEBHOOK_PATH
        assert fake is not None
        await fake.send_inbound(url, from_="+12065553003", to=OUR, body="hey there")
        sid = next(iter(fake.messages))
        await wait_for(lambda: settled(served.db) and len(fake.sent) == 1, 15)
        served.process.stop()
        _age(served.db, 3)
        await restart(served)
        token = Path(f"{served.db}.cli-token").read_text().strip()
        async with httpx.AsyncClient(timeout=10) as client:
            purge = await client.post(f"{served.base}/api/purge", json={"older_than": "2d"},
                                      headers={"Authorization": f"Bearer {token}"})
        replay = (await fake.send_inbound(url, from_="+12065553003", to=OUR, body="hey there",
                                          message_sid=sid))[0]
        await trio.sleep(1.0)
        conversations = count(served.db, "SELECT count(*) FROM conversations")
        replies = len(fake.sent)
    purged = purge.json().get("conversations") if purge.status_code == 200 else purge.text
    ok = purge.status_code == 200 and replay == 200 and conversations == 0 and replies == 1
    return ok, (f"purged {purged}; replay answered {replay}; {conversations} conversations, "
                f"{replies} reply in all"), "tombstones kept [retention] replay_guard"


@case("media-flood", "one webhook with 1,200 media URLs (as many as fit the 64 KiB body "
      "limit) stores at most "
      "media.max_per_message (10) rows")
async def media_flood(folder: Path) -> tuple[bool, str, str]:
    from intercept.gateways.twilio.signature import compute_signature

    async with provider_server(folder) as served, httpx.AsyncClient(timeout=10) as client:
        fake, url = served.fake, served.base + WEBHOOK_PATH
        assert fake is not None
        message = fake.record_missed_inbound(from_="+12065553004", to=OUR, body="pics")
        params = [(k, v) for k, v in fake.webhook_params(message) if k != "NumMedia"]
        params.append(("NumMedia", "1200"))
        for i in range(1200):  # short URLs: the whole form fits the 64 KiB body limit
            params.append((f"MediaUrl{i}", f"http://127.0.0.1/{i}"))
        response = await client.post(url, data=dict(params), headers={
            "X-Twilio-Signature": compute_signature(AUTH_TOKEN, url, params)})
        await wait_for(lambda: settled(served.db), 15)
        rows = count(served.db, "SELECT count(*) FROM media")
    ok = response.status_code == 200 and rows <= 10
    return ok, f"answered {response.status_code}; {rows} media rows", "1,200 URLs sent"


@case("evidence-tampered", "an evidence bundle whose file and hash line were both changed fails "
      "`export verify --public-key` (exit 1)")
async def evidence_tampered(folder: Path) -> tuple[bool, str, str]:
    import hashlib

    config = sim_config(folder, free_port())
    async with serving(folder, config) as served, httpx.AsyncClient(timeout=5) as client:
        await text(client, served.base, "+12065553005", "hey how much")
        await wait_for(lambda: settled(served.db), 15)
    config_path = served.process.config_path
    out = folder / "bundle"
    made = await trio.to_thread.run_sync(lambda: run_cli(config_path, "export", "--out",
                                                         str(out)))
    keys = sorted(folder.glob("*.pub"))
    if made.returncode != 0 or not keys:
        return False, f"export failed: {made.stderr.decode(errors='replace')[-200:]}", ""
    good = run_cli(config_path, "export", "verify", str(out), "--public-key", str(keys[0]),
                   config=False)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = next(e for e in manifest["files"] if e["path"].endswith(".csv"))
    target = out / entry["path"]
    target.write_text("number\n+10000000000\n")
    entry["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    entry["size"] = target.stat().st_size
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    bad = run_cli(config_path, "export", "verify", str(out), "--public-key", str(keys[0]),
                  config=False)
    said = (bad.stdout + bad.stderr).decode(errors="replace").strip().splitlines()
    ok = good.returncode == 0 and bad.returncode == 1
    return ok, f"untouched: exit {good.returncode}; tampered: exit {bad.returncode}", \
        (said[-1][:120] if said else "")


@case("terminal-escapes", "escape sequences a buyer sends (clear screen, OSC 52 clipboard) are "
      "shown escaped by `intercept chat` (and every CLI view of message text)")
async def terminal_escapes(folder: Path) -> tuple[bool, str, str]:
    config = sim_config(folder, free_port())
    path = write_config(config, folder)
    path.write_text(to_toml(config), encoding="utf-8")
    hostile = b"hi \x1b[2J\x1b]52;c;ZXZpbA==\x07 bye\n"
    shown = await trio.to_thread.run_sync(lambda: run_cli(path, "chat", "--to", OUR, "--fast",
                                                          stdin=hostile))
    output = shown.stdout.decode(errors="replace")
    raw = "\x1b" in output or "\x07" in output
    ok = shown.returncode == 0 and not raw and "bye" in output
    return ok, f"exit {shown.returncode}; raw control characters in the output: {raw}", \
        "the echo persona quotes the text back"


@case("chat-invalid-utf8", "`intercept chat` given invalid UTF-8 on stdin answers with U+FFFD "
      "instead of crashing")
async def chat_invalid_utf8(folder: Path) -> tuple[bool, str, str]:
    config = sim_config(folder, free_port())
    path = write_config(config, folder)
    path.write_text(to_toml(config), encoding="utf-8")
    result = await trio.to_thread.run_sync(lambda: run_cli(
        path, "chat", "--to", OUR, "--fast", stdin=b"hey \xff\xfe there\nok\n"))
    out = result.stdout.decode(errors="replace")
    ok = result.returncode == 0 and "Traceback" not in result.stderr.decode(errors="replace")
    return ok, f"exit {result.returncode}; {len(out.splitlines())} lines shown", ""


@case("disk-full", "on a full disk (a real tmpfs) intake is refused in the retry form (503) "
      "and /healthz says failing; once space returns every acknowledged text is answered once")
async def disk_full(folder: Path) -> tuple[bool | None, str, str]:
    disk = folder / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        return None, ("not run: mounting a tmpfs was refused ("
                      f"{mounted.stderr.decode(errors='replace').strip()[:80]})"), ""
    try:
        config = sim_config(folder, free_port(), store={"path": str(disk / "intercept.db")})
        acked: dict[str, int] = {}
        refused: list[str] = []
        async with serving(folder, config) as served, httpx.AsyncClient(timeout=10) as client:
            filler = disk / "filler"
            with filler.open("wb") as out:
                try:
                    while True:
                        out.write(bytes(65536))
                        out.flush()
                except OSError:
                    pass
            health_full = None
            for i in range(40):
                key = f"full-{i}"
                status = await text(client, served.base, f"+1206555{6000 + i:04d}",
                                    key + " " + "y" * 600, key)
                (acked if status == 200 else {}).setdefault(key, 0)
                if status == 503:
                    refused.append(key)
            health_full = (await client.get(f"{served.base}/healthz")).status_code
            filler.unlink()
            deadline = time.monotonic() + 30
            for key in list(refused):
                i = int(key.split("-")[1])
                while time.monotonic() < deadline:
                    status = await text(client, served.base, f"+1206555{6000 + i:04d}",
                                        key + " " + "y" * 600, key)
                    if status == 200:
                        acked[key] = 0
                        break
                    await trio.sleep(0.5)
            await wait_for(lambda: settled(served.db), 30)
            health_after = (await client.get(f"{served.base}/healthz")).status_code
            for record in served.replies():
                quoted = record["text"].removeprefix("re: ").split(" ", 1)[0]
                if quoted in acked:
                    acked[quoted] += 1
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)
    wrong = {k: n for k, n in acked.items() if n != 1}
    ok = bool(refused) and health_full == 503 and health_after == 200 and not wrong \
        and len(acked) == 40
    return ok, (f"{len(refused)} of 40 refused with 503 while full; /healthz {health_full} then "
                f"{health_after}; {len(acked)} acked, {len(wrong)} not answered exactly once"), \
        "6 MB tmpfs filled with a file"


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
        progress(f"{name}: {_result(row)} ({row.seconds} s)")
        rows.append(row)
    return rows


def _result(row: Row) -> str:
    return "skipped" if row.ok is None else "pass" if row.ok else "FAIL"


def table(rows: list[Row]) -> str:
    """A Markdown table of the rows (docs/reliability.md keeps one)."""
    lines = ["| case | expected | observed | figure | result |", "|---|---|---|---|---|"]
    for row in rows:
        result = _result(row)
        cells = [row.case, row.expected, row.observed, row.figure,
                 "**FAIL**" if result == "FAIL" else result]
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
        failed = [row.case for row in rows if row.ok is False]
        skipped = [row.case for row in rows if row.ok is None]
        print(f"\nfault matrix: {len(rows) - len(failed) - len(skipped)} of {len(rows)} cases "
              "as expected" + (f"; failing: {', '.join(failed)}" if failed else "")
              + (f"; skipped here: {', '.join(skipped)}" if skipped else ""))
    return 1 if any(row.ok is False for row in rows) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
