"""One load run: the network simulator, the server, the buyers, the drain, the verdict.

Time line: buyers start spread over `ramp_up` seconds and text until `duration` seconds after
the first one started; then nobody texts any more, and the run waits up to `drain` seconds for
every expected answer, then `settle` seconds more for late copies (duplicates). What is still
unanswered then is lost.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import httpx
import trio

from intercept.config import config_from_dict
from loadtest import pauses
from loadtest.behaviours import BEHAVIOURS, Buyer, assign
from loadtest.ledger import Ledger
from loadtest.phones import Phones, ProviderPhones, SmppPhones
from loadtest.state import LoadRun, Options
from loadtest.target import (
    SCENARIO_NAME,
    WEBHOOK_PATH,
    ServerProcess,
    ServerSettings,
    config_dict,
    free_port,
    our_numbers,
    proc_sample,
    secrets_env,
    write_config,
)

Hook = Callable[[LoadRun], Awaitable[None]]
WARMUP_PHONE = "+14255550100"
"""The warm-up conversation's phone (outside the buyers' numbers and the accounting)."""
WARMUP_TIMEOUT = 60.0


async def warm_up(run: LoadRun, our: str, *, phone: str = WARMUP_PHONE,
                  hint: str = "") -> float:
    """One conversation outside the accounting before the buyers start, so that one-time
    costs do not land on the first buyers: the first number lookup (a scenario's `lookup:
    number`, the buyer-number enricher) loads phonenumbers' metadata, ~100 MB of Python
    tables whose import holds the interpreter for ~0.5-3 s, stalling every conversation (the
    second text's answer waits for it); the seconds until its second reply. `phone`: a
    phone outside the accounting (against a running server, one new to it)."""
    ledger = run.ledger
    ledger.ignored.add(phone)
    started = trio.current_time()
    with trio.move_on_after(WARMUP_TIMEOUT) as scope:
        for text in ("hey", "how much"):
            seen = ledger.ignored_replies
            await run.phones.send(phone, our, text)
            while ledger.ignored_replies == seen:
                await trio.sleep(0.05)
    if scope.cancelled_caught:
        raise RuntimeError(f"the warm-up texts got no reply within {WARMUP_TIMEOUT:.0f} s: "
                           "does the scenario answer its first two texts?" + hint)
    return trio.current_time() - started


async def _buyer(run: LoadRun, index: int, behaviour: str, ours: list[str]) -> None:
    """One simulated buyer, from its first text to its outcome (counted in `run`)."""
    run.live += 1
    run.started += 1
    try:
        outcome = await BEHAVIOURS[behaviour](Buyer(run, index, behaviour, ours))
    finally:
        run.live -= 1
    run.outcomes[(behaviour, outcome)] += 1


def _phones(options: Options, ledger: Ledger) -> Phones:
    if options.transport == "smpp":
        return SmppPhones(ledger.received_reply, faults=options.faults, seed=options.seed,
                          rate_cap=options.rate_cap, window=options.smsc_window,
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
                run.warmup_seconds = await warm_up(run, ours[0])
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
                                  synchronous=options.synchronous,
                                  checkpoints=options.checkpoints,
                                  scenario=options.scenario_name or SCENARIO_NAME,
                                  extra=options.server_extra)
        run.health_url = f"http://127.0.0.1:{settings.http_port}"
        run.db = folder / "intercept.db"
        config = config_dict(settings, transport=options.transport, network_port=network_port,
                             secrets_inline=options.in_process)
        path = write_config(config, folder, experiment=options.experiment)
        started = time.monotonic()
        if options.in_process:
            from intercept.server import Server

            server = Server(config_from_dict(config, source=str(path), environ={}))
            run.in_process = server
            await nursery.start(_serve_in_process, run, server)
            run.startup_seconds = time.monotonic() - started
        else:
            run.server = ServerProcess(path, secrets_env(options.transport),
                                       cpu=0 if options.pin else None,
                                       profile=options.profile_server)
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


async def ramp_and_drain(run: LoadRun, count: int,
                         start_one: Callable[[trio.Nursery, int], None],
                         hook: Hook | None) -> None:
    """The shape of every load: `start_one(nursery, position)` for positions 0..count-1 spread
    over the ramp-up (none after the end), the server sampled at the start and the end, then a
    drain until every answer is in and the server's outbox is empty, then the settle time."""
    options = run.options
    run.start_at = trio.current_time()
    run.wall_offset = time.time() - run.start_at
    run.end_at = run.start_at + options.duration
    drain_at = run.end_at + options.drain
    if run.server is not None:
        run.samples["start"] = run.server.sample()
        run.samples["self_start"] = proc_sample(os.getpid())
    if run.health_url is not None and run.in_process is None:
        run.pauses_at_start = await pauses.read(run.health_url)
    async with trio.open_nursery() as outer:
        if hook is not None:
            outer.start_soon(hook, run)
        with trio.move_on_at(drain_at):
            async with trio.open_nursery() as load:
                for position in range(count):
                    at = run.start_at + options.ramp_up * position / max(1, count)
                    if at >= run.end_at:
                        break
                    if at > trio.current_time():
                        await trio.sleep_until(at)
                    start_one(load, position)
                await trio.sleep_until(run.end_at)
                if run.server is not None:
                    run.samples["end"] = run.server.sample()
                    run.samples["self_end"] = proc_sample(os.getpid())
                run.server_live_at_end = await _server_live(run)
                if run.pauses_at_start is not None:
                    run.pauses = pauses.figures(run.pauses_at_start,
                                                await pauses.read(run.health_url or ""))
        with trio.move_on_at(drain_at):
            # every answer in, and nothing left in the server's outbox (a retry could still
            # deliver a second copy of an answer already received)
            while run.ledger.outstanding > 0 or (await _server_health(run)).get("outbox_depth"):
                await trio.sleep(0.1)
        await trio.sleep(options.settle)
        outer.cancel_scope.cancel()


async def _drive(run: LoadRun, behaviours: list[str], ours: list[str], hook: Hook | None,
                 indices: range | None = None) -> None:
    """Start the buyers over the ramp-up, stop texting at the end, drain, settle.

    `indices`: the buyers this process plays (a buyer process of `--processes`); all of them
    by default."""
    played = range(len(behaviours)) if indices is None else indices

    def start_one(nursery: trio.Nursery, position: int) -> None:
        index = played[position]
        behaviour = behaviours[index]
        pair = [ours[index % len(ours)], ours[(index + 1) % len(ours)]]
        run.by_behaviour[behaviour] += 1
        nursery.start_soon(_buyer, run, index, behaviour, pair)

    await ramp_and_drain(run, len(played), start_one, hook)


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
