"""What a load run is told (`Options`) and what it knows as it goes (`LoadRun`): shared by the
run, the buyers' behaviours and the report, so that none of them imports another."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from loadtest.ledger import Ledger
from loadtest.phones import Phones
from loadtest.target import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CITY_LINK,
    CONFIRMATION,
    PASSWORD,
    SYSTEM_ID,
    ServerProcess,
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
    smsc_window: int = 100
    """The SMSC simulator's window: deliver_sm (texts in and delivery receipts) it keeps
    unanswered at once."""
    hibernate_after: str = "2m"
    synchronous: str = "normal"
    checkpoints: str = "writer"
    in_process: bool = False
    pin: bool = False
    keep: bool = False
    profile_server: Path | None = None
    """Run the server under cProfile and write its profile here when it stops."""
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
    scenario: str | None = None
    """A real scenario to drive (a file, or "shipped"); None: the generated echo."""
    delay_scale: float = 0.01
    """With `scenario`: the factor on every delay and timer (the server's reply delays, the
    scenario's merge window, busy pauses, timeouts, expiry) and on the buyers' pauses."""
    corpus: Path | None = None
    """With `scenario`: the buyer corpus (default loadtest/corpus/buyers.yaml)."""
    processes: int = 0
    """With `scenario`: buyer processes (the network in one more); 0: all in this process."""
    first_conversation: int = 0
    """With `scenario` and `target`: the number of the run's first conversation (its phone and
    our number), so that a server that kept an earlier run's store meets only new pairs."""
    marker: str = CITY_LINK
    """With `scenario`: a reply containing this is the deterrence (the city's link)."""
    store: Path | None = None
    """With `target`: the running server's store file, read after the run (beyond-schedule
    latency, duplicates over SMPP, outcomes), when it is on this machine."""
    pause_chance: float = 0.0
    """With `scenario`: the chance that a buyer pauses longer than `hibernate_after` before a
    step, so that its conversation hibernates and wakes (the soak)."""
    scenario_name: str | None = None
    """Filled by the run: the name of the scenario the generated config's numbers run."""
    server_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Filled by the run: config sections merged into the generated config."""
    experiment: bool = False
    """Run the echo behind a split declared experiment `loadtest.target.EXPERIMENT`; the
    report then compares its branches (as `intercept report --experiment` does)."""


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
        self.store_since = 0.0
        """Unix time from which the store's rows are this run's (a running server's store
        holds earlier runs too)."""
        self.scaled: Any = None
        """A scenario run: the `loadtest.scaled.ScaledScenario` the server runs."""
        self.process_figures: dict[str, Any] | None = None
        """`--processes`: each process's share of a core over the load, and the bound."""
        self.warmup_seconds: float | None = None
        """A scenario run: the warm-up conversation's first reply took this long."""
        self.pauses_at_start: Any = None
        self.pauses: dict[str, Any] | None = None
        """The server's collections and loop lag over the load (`loadtest.pauses`)."""
        self.wall_offset = 0.0
        """time.time() - trio.current_time() when the buyers started."""


BOUND_SHARE = 0.9
"""A process using this much of one core over the load was the bound."""


def _share(before: dict[str, float], after: dict[str, float], seconds: float) -> float | None:
    if "cpu_seconds" not in before or "cpu_seconds" not in after or seconds <= 0:
        return None
    return round((after["cpu_seconds"] - before["cpu_seconds"]) / seconds, 3)


def process_figures(pids: dict[str, int], start: dict[str, dict[str, float]],
                    end: dict[str, dict[str, float]], seconds: float) -> dict[str, Any]:
    """Each process's share of one core over `seconds`, and which (if any) was the bound."""
    shares = {name: _share(start.get(name, {}), end.get(name, {}), seconds) for name in pids}
    rss = {name: round(end[name]["rss_mib"], 1) for name in pids if "rss_mib" in end.get(name, {})}
    known = {name: share for name, share in shares.items() if share is not None}
    top = max(known, key=known.__getitem__) if known else None
    bound = (f"{top} ({known[top]:.2f} of a core)" if top and known[top] >= BOUND_SHARE
             else "none near a whole core (the machine's other load, or waits)")
    return {"cpu_share_of_one_core": shares, "rss_mib_at_end": rss, "bound": bound,
            "cores": os.cpu_count()}
