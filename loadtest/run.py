"""One load run: the network simulator, the server, the buyers, the drain, the verdict.

Time line: buyers start spread over `ramp_up` seconds and text until `duration` seconds after
the first one started; then nobody texts any more, and the run waits up to `drain` seconds for
every expected answer, then `settle` seconds more for late copies (duplicates). What is still
unanswered then is lost.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import httpx
import trio

from intercept.config import config_from_dict
from loadtest.behaviours import BEHAVIOURS, Buyer, assign
from loadtest.ledger import Ledger
from loadtest.phones import Phones, ProviderPhones, SmppPhones
from loadtest.target import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CONFIRMATION,
    PASSWORD,
    SYSTEM_ID,
    WEBHOOK_PATH,
    ServerProcess,
    ServerSettings,
    config_dict,
    free_port,
    our_numbers,
    secrets_env,
    write_config,
)


@dataclass
class Options:
    """Everything a run needs; the command line fills it (`loadtest.cli`)."""

    transport: str = "smpp"
    buyers: int = 1000
    duration: float = 30.0
    ramp_up: float = 5.0
    drain: float = 20.0
    settle: float = 1.0
    mix: dict[str, float] = field(default_factory=lambda: {"human": 1.0})
    think: tuple[float, float] = (1.0, 5.0)
    reply_timeout: float = 10.0
    faults: dict[str, float] = field(default_factory=dict)
    rate_cap: float | None = None
    """A contracted rate: the SMSC (per bind) or the provider (per number) throttles above it."""
    seed: int = 1
    numbers: int = 4
    window: int = 100
    hibernate_after: str = "2m"
    synchronous: str = "normal"
    in_process: bool = False
    pin: bool = False
    keep: bool = False
    progress_interval: float = 1.0
    target: str | None = None
    """Base URL of a running server (http://HOST:PORT); None: start one."""
    listen: tuple[str, int] = ("127.0.0.1", 0)
    """Where the SMSC simulator or the fake provider listens."""
    ours: list[str] = field(default_factory=list)
    confirmation: str = CONFIRMATION
    system_id: str = SYSTEM_ID
    password: str = PASSWORD
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    callbacks: bool = True


class LoadRun:
    """The state of a run that the buyers and the progress line share."""

    def __init__(self, options: Options, phones: Phones, ledger: Ledger) -> None:
        self.options = options
        self.phones = phones
        self.ledger = ledger
        self.start_at = 0.0
        self.end_at = float("inf")
        self.live = 0
        self.started = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.by_behaviour: Counter[str] = Counter()
        self.server_live_peak = 0
        self.server_live_at_end: int | None = None
        self.server: ServerProcess | None = None
        self.in_process: Any = None
        self.health_url: str | None = None
        self.samples: dict[str, dict[str, float]] = {}
        self.startup_seconds: float | None = None
        self.db: Path | None = None
        self.server_exit: int | None = None
        self.in_process_done = trio.Event()

    async def buyer(self, index: int, behaviour: str, ours: list[str]) -> None:
        self.live += 1
        self.started += 1
        try:
            outcome = await BEHAVIOURS[behaviour](Buyer(self, index, behaviour, ours))
        finally:
            self.live -= 1
        self.outcomes[(behaviour, outcome)] += 1


Hook = Callable[[LoadRun], Awaitable[None]]


def _phones(options: Options, ledger: Ledger) -> Phones:
    if options.transport == "smpp":
        return SmppPhones(ledger.received_reply, faults=options.faults, seed=options.seed,
                          rate_cap=options.rate_cap,
                          system_id=options.system_id, password=options.password)
    return ProviderPhones(ledger.received_reply, account_sid=options.account_sid,
                          auth_token=options.auth_token, faults=options.faults,
                          rate_cap=options.rate_cap,
                          seed=options.seed, callbacks=options.callbacks)


async def run_load(options: Options, *, progress: TextIO | None = sys.stderr,
                   hook: Hook | None = None) -> dict[str, Any]:
    """Run the load described by `options`; the report (see `loadtest.report`).

    `hook`, if given, runs beside the buyers once they start (tests use it to break things).
    """
    from loadtest.report import Progress, build_report

    ledger = Ledger(confirmation=options.confirmation)
    phones = _phones(options, ledger)
    run = LoadRun(options, phones, ledger)
    ours = options.ours or our_numbers(options.numbers)
    behaviours = assign(options.mix, options.buyers)
    if "two_numbers" in behaviours and len(ours) < 2:
        raise ValueError("the two_numbers behaviour needs at least 2 of our numbers; "
                         f"there is {len(ours)} (--numbers, --ours)")
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="intercept-loadtest-")) if options.keep else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="intercept-loadtest-")))
        async with trio.open_nursery() as nursery:
            host, port = options.listen
            network_port = await nursery.start(partial(phones.serve, host, port))
            try:
                await _start_server(run, nursery, folder, ours, network_port)
                if progress is not None:
                    nursery.start_soon(Progress(run, progress).loop)
                await _drive(run, behaviours, ours, hook)
            finally:
                with trio.CancelScope(shield=True):
                    await _stop_server(run)
                nursery.cancel_scope.cancel()
        report = build_report(run, folder=folder if options.keep else None)
    return report


async def _start_server(run: LoadRun, nursery: trio.Nursery, folder: Path, ours: list[str],
                        network_port: int) -> None:
    options = run.options
    if options.target:
        run.health_url = options.target.rstrip("/")
    else:
        settings = ServerSettings(numbers=ours, folder=folder, http_port=free_port(),
                                  window=options.window, hibernate_after=options.hibernate_after,
                                  synchronous=options.synchronous)
        run.health_url = f"http://127.0.0.1:{settings.http_port}"
        run.db = folder / "intercept.db"
        config = config_dict(settings, transport=options.transport, network_port=network_port,
                             secrets_inline=options.in_process)
        path = write_config(config, folder)
        started = time.monotonic()
        if options.in_process:
            from intercept.server import Server

            server = Server(config_from_dict(config, source=str(path), environ={}))
            run.in_process = server
            await nursery.start(_serve_in_process, run, server)
            run.startup_seconds = time.monotonic() - started
        else:
            run.server = ServerProcess(path, secrets_env(options.transport),
                                       cpu=0 if options.pin else None)
            run.startup_seconds = await run.server.wait_healthy(run.health_url)
    if isinstance(run.phones, ProviderPhones):
        run.phones.webhook_url = f"{run.health_url}{WEBHOOK_PATH}"
    if isinstance(run.phones, SmppPhones):
        with trio.move_on_after(60) as scope:
            await run.phones.ready()
        if scope.cancelled_caught:
            raise RuntimeError("no server bound to the SMSC simulator within 60 s: is its "
                               "gateway.url smpp://SYSTEM_ID@HOST:PORT pointing at "
                               f"{options.listen[0]}:{network_port} with the right password?")
    elif options.target:
        await _wait_healthz(run.health_url)


async def _serve_in_process(run: LoadRun, server: Any, *,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                            ) -> None:
    try:
        await server.run(task_status=task_status)
    finally:
        run.in_process_done.set()


async def _wait_healthz(base: str, timeout: float = 30.0) -> None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        with trio.move_on_after(timeout):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{base}/healthz")).status_code == 200:
                        return
                await trio.sleep(0.2)
    raise RuntimeError(f"{base}/healthz did not answer within {timeout:.0f} s: is --target "
                       "the running server's HTTP address?")


async def _drive(run: LoadRun, behaviours: list[str], ours: list[str], hook: Hook | None
                 ) -> None:
    """Start the buyers over the ramp-up, stop texting at the end, drain, settle."""
    options = run.options
    ledger = run.ledger
    run.start_at = trio.current_time()
    run.end_at = run.start_at + options.duration
    drain_at = run.end_at + options.drain
    if run.server is not None:
        run.samples["start"] = run.server.sample()
    async with trio.open_nursery() as outer:
        if hook is not None:
            outer.start_soon(hook, run)
        with trio.move_on_at(drain_at):
            async with trio.open_nursery() as buyers:
                for index, behaviour in enumerate(behaviours):
                    at = run.start_at + options.ramp_up * index / max(1, len(behaviours))
                    if at >= run.end_at:
                        break
                    if at > trio.current_time():
                        await trio.sleep_until(at)
                    pair = [ours[index % len(ours)], ours[(index + 1) % len(ours)]]
                    run.by_behaviour[behaviour] += 1
                    buyers.start_soon(run.buyer, index, behaviour, pair)
                await trio.sleep_until(run.end_at)
                if run.server is not None:
                    run.samples["end"] = run.server.sample()
                run.server_live_at_end = await _server_live(run)
        with trio.move_on_at(drain_at):
            # every answer in, and nothing left in the server's outbox (a retry could still
            # deliver a second copy of an answer already received)
            while ledger.outstanding > 0 or (await _server_health(run)).get("outbox_depth"):
                await trio.sleep(0.1)
        await trio.sleep(options.settle)
        outer.cancel_scope.cancel()


async def _server_live(run: LoadRun) -> int | None:
    live = (await _server_health(run)).get("live_actors")
    return None if live is None else int(live)


async def _server_health(run: LoadRun) -> dict[str, Any]:
    """The server's /healthz (live_actors, outbox_depth), or {} when it cannot be read."""
    if run.in_process is not None:
        return run.in_process.health() if not run.in_process_done.is_set() else {}
    if run.health_url is None:
        return {}
    with contextlib.suppress(httpx.HTTPError, ValueError):
        async with httpx.AsyncClient(timeout=2.0) as client:
            answer = (await client.get(f"{run.health_url}/healthz")).json()
            return answer if isinstance(answer, dict) else {}
    return {}


async def _stop_server(run: LoadRun) -> None:
    if run.in_process is not None:
        run.in_process.stop()
        with trio.move_on_after(30):
            await run.in_process_done.wait()
    if run.server is not None:
        run.samples["stopped"] = run.server.sample()
        run.server_exit = await trio.to_thread.run_sync(run.server.stop)
