"""A load run of a real scenario (`intercept-loadtest --scenario FILE|shipped`).

The server runs the scenario in compressed time (`loadtest.scaled`: every duration it writes
and the server's reply delays times `--delay-scale`); `--buyers` simulated phones each draw a
path from the buyer corpus (`loadtest.corpus`), text it at human pace (pauses times the same
factor), and when a conversation is over start another from a new number, until the run's
duration is up. The accounting is `loadtest.scenario_ledger`'s; the report
`loadtest.scenario_report`'s.

Buyer pace, in unscaled seconds: fragments of one step 1-4 s apart (inside the shipped 15 s
merge window), 4-20 s to read an answer plus typing at 4 characters a second before the next
step, 0-30 s between a slot's conversations. A buyer waits for the first reply to each step
(at most the bound), then for the rest of a multi-part answer (no reply for 60 s scaled, at
least 0.2 s: the parts of the shipped deterrence are up to ~40 s apart unscaled).
"""

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import trio

from intercept.engine.durations import parse_duration
from loadtest.behaviours import MAX_BUYERS, buyer_number
from loadtest.corpus import Corpus, Message, Plan
from loadtest.run import (
    Hook,
    _phones,
    _start_server,
    _stop_server,
    ramp_and_drain,
    warm_up,
)
from loadtest.scaled import ScaledScenario, resolve, write_scaled
from loadtest.scenario_ledger import STOP, Conversation, ScenarioLedger, TextKind
from loadtest.state import LoadRun, Options
from loadtest.target import our_numbers

DELAY_MAX = 120.0
"""The server's longest reply delay before scaling (`delays.max` of the generated config)."""
FRAGMENT_GAP = (1.0, 4.0)
READ = (4.0, 20.0)
TYPE_CPS = 4.0
BETWEEN = (0.0, 30.0)
QUIET = 60.0
VARIATIONS = ("?", " lol", " pls", " 👍", "!")
"""Added to a text the buyer already sent in this conversation: SMPP gives an MO message no
id, so the server takes the same text from the same phone within `gateway.dedupe_window` (10 m)
for the SMSC redelivering it and drops it (docs/smpp.md); a repeated "ok" would be lost by
design and counted as unanswered."""


def default_bound(scaled: ScaledScenario, scale: float) -> float:
    """The reply bound when none is given: 5 s plus the scaled merge window, busy pause and
    longest reply delay."""
    return round(5.0 + scaled.merge + scaled.busy_max + DELAY_MAX * scale, 3)


def fit_bound(options: Options, scaled: ScaledScenario) -> None:
    """Set the reply bound (the default one when none was given) and make the drain at least
    as long: a text sent as the run ends must have the bound's time to be answered, or the
    accounting would call it unanswered (at --delay-scale 1 the bound is minutes)."""
    if options.reply_timeout <= 0:
        options.reply_timeout = default_bound(scaled, options.delay_scale)
    options.drain = max(options.drain, options.reply_timeout)


def prepare(options: Options, folder: Path) -> ScaledScenario:
    """Write the scaled scenario into the generated config's scenario folder, and point the
    options at it."""
    assert options.scenario is not None
    scaled = write_scaled(resolve(options.scenario), folder / "scenarios", options.delay_scale)
    options.scenario_name = scaled.name
    options.server_extra = {**options.server_extra,
                            "delays": {"enabled": True, "scale": options.delay_scale}}
    return scaled


class ScenarioBuyers:
    """The buyer slots of a scenario run."""

    def __init__(self, run: LoadRun, corpus: Corpus, ours: list[str], *,
                 long_pause: float = 0.0, long_pause_seconds: float = 0.0,
                 shard: int = 0, shards: int = 1) -> None:
        self.run = run
        self.ledger: ScenarioLedger = run.ledger  # type: ignore[assignment]
        self.corpus = corpus
        self.ours = ours
        self.scale = run.options.delay_scale
        self.bound = run.options.reply_timeout
        self.long_pause = long_pause
        """Chance that a step is preceded by a pause of `long_pause_seconds` (real seconds):
        the soak uses it so that conversations hibernate and wake."""
        self.long_pause_seconds = long_pause_seconds
        self.shard = shard
        """This process's share of the numbers: conversation numbers shard, shard + shards,
        ... (buyer processes of one run never share a phone)."""
        self.shards = shards
        self.started_here = run.options.first_conversation if shards == 1 else 0
        """Conversation numbers this process has taken (`take_number`); a run against a
        server that kept an earlier run's store starts after that run's."""
        self.capacity = MAX_BUYERS * len(ours)
        self.conversations = 0
        self.stopped: set[str] = set()
        """Phones that texted STOP: opted out for every one of our numbers, so a long run
        (the soak) that wraps around the phones leaves them out instead of expecting replies."""

    @property
    def active(self) -> bool:
        return trio.current_time() < self.run.end_at

    async def slot(self, index: int) -> None:
        """One simulated buyer after another, until the run ends."""
        run = self.run
        run.live += 1
        try:
            rng = random.Random(f"{run.options.seed}:slot:{self.shard}:{index}")
            while self.active and (number := self.take_number()) is not None:
                their, our = self.pair(number)
                if their in self.stopped:
                    continue  # it texted STOP before the phones wrapped: it is never texted again
                plan = self.corpus.draw(random.Random(f"{run.options.seed}:{number}"))
                outcome = await self.converse(number, their, our, plan, rng)
                run.outcomes[(plan.path, outcome)] += 1
                await self.pause(rng.uniform(*BETWEEN))
        finally:
            run.live -= 1

    def pair(self, number: int) -> tuple[str, str]:
        """Conversation `number`'s phone and our number: every (phone, our number) pair once,
        the k-th wrap of the phones moving on k of our numbers."""
        their = buyer_number(number % MAX_BUYERS)
        return their, self.ours[(number % MAX_BUYERS + number // MAX_BUYERS) % len(self.ours)]

    def take_number(self) -> int | None:
        """The next conversation number of this process, None when every (phone, our number)
        pair has been used.

        A process owns the phones `shard`, `shard + shards`, ... below MAX_BUYERS and keeps
        them when the phones wrap around (the k-th wrap is numbers k * MAX_BUYERS + phone), so
        that the process that saw a phone text STOP is the one that would text from it again.
        """
        per_wrap = len(range(self.shard, MAX_BUYERS, self.shards))
        wrap, nth = divmod(self.started_here, per_wrap)
        number = wrap * MAX_BUYERS + self.shard + nth * self.shards
        if number >= self.capacity:
            return None
        self.started_here += 1
        return number

    async def converse(self, number: int, their: str, our: str, plan: Plan,
                       rng: random.Random) -> str:
        """One conversation along `plan`; an outcome word for the report."""
        conv = self.ledger.open(number, their, our, path=plan.path, ends=plan.ends)
        self.run.started += 1
        self.conversations += 1
        for step in plan.steps:
            if not await self.step(conv, step, rng):
                return "cut short"
            if conv.deterred_at is not None or conv.confirmed_at is not None:
                break
        if plan.ends == "deterred" and conv.deterred_at is None:
            for step in plan.closing:
                if not await self.step(conv, step, rng):
                    return "cut short"
                if conv.deterred_at is not None:
                    break
        conv.finished = True
        reached = conv.deterred_at is not None or conv.confirmed_at is not None
        if reached:
            for step in plan.after:
                if not self.active:
                    break
                await self.send(conv, step, rng, kind="none")
                await self.pause(rng.uniform(*READ))
        return ("deterred" if conv.deterred_at is not None else
                "opted out" if conv.confirmed_at is not None else plan.ends)

    async def step(self, conv: Conversation, step: tuple[Message, ...],
                   rng: random.Random) -> bool:
        """Send one step, wait for its answer, read it; False if the run ended first."""
        if not self.active:
            return False
        if self.long_pause and rng.random() < self.long_pause:
            await trio.sleep(min(self.long_pause_seconds,
                                 max(0.0, self.run.end_at - trio.current_time())))
            if not self.active:
                return False
        if conv.deterred_at is not None or conv.confirmed_at is not None:
            return True  # the rest of the answer came during the pause: nothing to say
        seen = conv.replies
        await self.send(conv, step, rng)
        if await self.ledger.wait_reply(conv, seen, self.bound):
            await self.ledger.wait_quiet(conv, max(0.2, QUIET * self.scale), self.bound)
        typing = len(step[-1].text) / TYPE_CPS
        await self.pause(rng.uniform(*READ) + typing)
        return True

    async def send(self, conv: Conversation, step: tuple[Message, ...], rng: random.Random,
                   *, kind: TextKind | None = None) -> None:
        for i, message in enumerate(step):
            if i:
                await self.pause(rng.uniform(*FRAGMENT_GAP))
            this: TextKind = kind or ("stop" if STOP.match(message.text) else "reply")
            body = message.text
            while body in conv.said and not message.photo and this != "stop":
                body += rng.choice(VARIATIONS)
            conv.said.add(body)
            if this == "stop":
                self.stopped.add(conv.their)
            self.ledger.expect(conv, this, trio.current_time())
            if not await self.run.phones.send(conv.their, conv.our, body,
                                              photo=message.photo):
                self.ledger.send_failed(conv)

    async def pause(self, human_seconds: float) -> None:
        """A human pause in compressed time, cut short by the end of the run."""
        pause = min(human_seconds * self.scale, self.run.end_at - trio.current_time())
        if pause > 0:
            await trio.sleep(pause)


async def run_scenario(options: Options, *, progress: TextIO | None = sys.stderr,
                       hook: Hook | None = None) -> dict[str, Any]:
    """Run `options.scenario` under load; the report (see `loadtest.scenario_report`)."""
    from loadtest.report import Progress
    from loadtest.scenario_report import build_scenario_report

    corpus = Corpus.load(options.corpus)
    ours = options.ours or our_numbers(options.numbers)
    with contextlib.ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="intercept-loadtest-")) if options.keep else \
            Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="intercept-loadtest-")))
        scaled = prepare(options, folder)
        fit_bound(options, scaled)
        ledger = ScenarioLedger(bound=options.reply_timeout, marker=options.marker,
                                exact_keys=options.transport == "provider")
        phones = _phones(options, ledger)  # type: ignore[arg-type]
        run = LoadRun(options, phones, ledger)  # type: ignore[arg-type]
        run.scaled = scaled
        buyers = ScenarioBuyers(run, corpus, ours, long_pause=options.pause_chance,
                                long_pause_seconds=parse_duration(options.hibernate_after) + 1)
        async with trio.open_nursery() as nursery:
            host, port = options.listen
            network_port = await nursery.start(partial(phones.serve, host, port))
            try:
                await _start_server(run, nursery, folder, ours, network_port)
                if options.target:
                    # a running server keeps its store: the warm-up takes the first
                    # conversation's pair, new to it like every pair of this run
                    run.db = options.store
                    ledger.earlier_phones = min(options.first_conversation, MAX_BUYERS)
                    run.store_since = time.time() - 1.0  # its rows from here on are this run's
                    number = buyers.take_number()
                    if number is None:
                        raise ValueError("--first-conversation leaves no conversation to run")
                    their, our = buyers.pair(number)
                    run.warmup_seconds = await warm_up(
                        run, our, phone=their,
                        hint=f" Or has conversation {number:,} ({their} to {our}) been used "
                             "by an earlier run against this store? Go on at the "
                             "--first-conversation its report gave, or start the server on a "
                             "fresh store")
                else:
                    run.warmup_seconds = await warm_up(run, ours[0])
                if progress is not None:
                    nursery.start_soon(Progress(run, progress).loop)
                await drive(run, buyers, hook)
            finally:
                with trio.CancelScope(shield=True):
                    await _stop_server(run)
                nursery.cancel_scope.cancel()
        ledger.finish()
        return build_scenario_report(run, buyers.conversations,
                                     folder=folder if options.keep else None,
                                     next_conversation=buyers.started_here)


async def drive(run: LoadRun, buyers: ScenarioBuyers, hook: Hook | None) -> None:
    """Start the slots over the ramp-up; at the end, drain and settle."""
    await ramp_and_drain(run, run.options.buyers,
                         lambda nursery, index: nursery.start_soon(buyers.slot, index), hook)
