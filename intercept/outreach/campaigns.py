"""The campaign runner: one task that texts the numbers found in ads, campaign by campaign.

For each running campaign it keeps the numbers still to text (found in the city's ads and not
yet decided; re-read every `refresh` seconds, so new imports join a running campaign), grouped
by the time zones their window is read in. It texts a number only when it is inside the
campaign's window in the recipient's local time, when the campaign's overall rate and the
sending number's rate allow, and only through `CampaignSend`, which re-checks opt-out, the
contact-again rule and existing conversations in the transaction that starts the conversation.
The sender refuses any text to an opted-out number anyway.

Starting a conversation: the campaign takes the conversation's first turn (`take_turn`, the
same pure function the actor uses), so the conversation is stored already past its opening
text, waiting for the reply, and the opening text is its first outbox row (kind ``campaign``),
committed in the one transaction that re-checks opt-out and the contact-again rule (which is
why the campaign takes the turn itself rather than handing the router a start event: an actor's
commit could not record the campaign's decision with it). The turn's status is stored as the
actor would store it. With campaign `variants`, one of them replaces the scenario's opening
texts (and its A/B record), and the conversation is tagged ``campaign_variant:N``. Campaign
state (running / paused, and every number decided) is in the store, so a restarted server
resumes where it stopped.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
import trio
from prometheus_client import Counter

from ..config import Campaign, Config
from ..engine import ConversationState, Machine
from ..engine.machine import SPLIT
from ..engine.rng import choose, seed_from
from ..engine.template import Template
from ..errors import ConfigError
from ..foundation.phone import mask
from ..runtime.delays import DelayModel
from ..runtime.turn import Turn, TurnInput, TurnRules, take_turn
from ..store.campaigns import (
    CampaignCounts,
    CampaignRows,
    CampaignSend,
    CampaignSent,
    CampaignSkip,
    LoadCampaigns,
    Opening,
    PendingTargets,
    Reschedule,
    SendingNumbers,
    SetCampaignStatus,
)
from ..store.ops import FunnelMove, OutboxRow
from .window import Window, parse_rate, zones_for

if TYPE_CHECKING:
    from ..foundation.metrics import Metrics
    from ..runtime.clock import WallClock
    from ..runtime.number_health import NumberHealthMonitor
    from ..runtime.optouts import OptOuts
    from ..scenarios import ScenarioRegistry
    from ..store import Store

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
_AT_ONCE = DelayModel(enabled=False)
"""A campaign's first texts go when the campaign sends them (the store sets their time)."""


@dataclass(frozen=True, slots=True)
class CampaignServices:
    """What the campaign runner is handed by the composition root (server.py)."""

    config: Config
    registry: ScenarioRegistry
    store: Store
    clock: WallClock
    metrics: Metrics
    optouts: OptOuts
    """Asked before a number is texted."""
    number_health: NumberHealthMonitor
    """Which of our numbers are paused, and how often that is checked."""
    enqueue: Callable[[list[OutboxRow]], None]
    """Hand committed first texts to the sender."""
    schedule_timer: Callable[[int, float], None]
    """`schedule_timer(conversation_id, at)`: wake a new conversation for its first timer."""
    record: Callable[[str, Sequence[FunnelMove], str | None, bool], None]
    """`record(scenario, transitions, outcome, handed_off)`: count a started conversation."""


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A campaign of the config, with its values parsed."""

    campaign: Campaign
    window: Window
    per_number: float
    """Seconds between two texts from one of our numbers."""
    spacing: float
    """Seconds between two texts of the campaign."""
    contact_after: float
    timezone: str
    """The city's time zone (the fallback for numbers without one)."""

    @classmethod
    def of(cls, campaign: Campaign, config: Config) -> CampaignSpec:
        return cls(campaign, Window.parse(campaign.window),
                   1.0 / parse_rate(campaign.rate_per_number), 1.0 / parse_rate(campaign.rate),
                   float(campaign.contact_again_after),
                   config.cities[campaign.city].timezone)

    @property
    def name(self) -> str:
        return self.campaign.name

    def zones(self, number: str) -> tuple[str, ...]:
        return zones_for(number, self.timezone)


@dataclass(slots=True)
class _Live:
    """A running campaign's numbers still to text, by the time zones of their window."""

    spec: CampaignSpec
    next_at: float = 0.0
    refreshed_at: float | None = None
    groups: dict[tuple[str, ...], collections.deque[tuple[int, str]]] = field(
        default_factory=dict)
    known: set[str] = field(default_factory=set)
    seq: int = 0

    def add(self, numbers: list[str]) -> None:
        for number in numbers:
            if number not in self.known:
                self.known.add(number)
                self.seq += 1
                self.groups.setdefault(self.spec.zones(number), collections.deque()).append(
                    (self.seq, number))

    def done(self, zones: tuple[str, ...]) -> None:
        """The head of a group has been decided."""
        self.groups[zones].popleft()
        if not self.groups[zones]:
            del self.groups[zones]


@dataclass(frozen=True, slots=True)
class CampaignProgress:
    """A campaign's live figures (see docs/outreach.md)."""

    name: str
    city: str
    status: str
    """running, paused or idle (never started)."""
    window: str
    started_at: float | None
    targets: int
    texted: int
    sent: int
    queued: int
    failed: int
    held: int
    """Numbers still to text whose local time is outside the window now."""
    waiting: int
    """Numbers still to text inside their window, waiting for the rates."""
    skipped: dict[str, int]
    replied: int
    handed_off: int
    opted_out: int


def campaign_specs(config: Config) -> dict[str, CampaignSpec]:
    """The [[campaigns]] of `config` by name, with their values parsed."""
    return {c.name: CampaignSpec.of(c, config) for c in config.campaigns}


def check_campaigns(config: Config, registry: ScenarioRegistry) -> None:
    """Raise `ConfigError` naming every campaign whose scenario is missing or says nothing
    when it starts (and the campaign gives no variants)."""
    problems = []
    for i, campaign in enumerate(config.campaigns):
        machine = registry.current(campaign.scenario)
        if machine is None:
            problems.append(f"campaigns[{i}].scenario: no scenario named "
                            f"{campaign.scenario!r} in {config.scenario_dir}")
        elif not campaign.variants and not _says_something(campaign, machine, config):
            problems.append(f"campaigns[{i}]: scenario {campaign.scenario!r} sends nothing "
                            "when it starts; give the campaign variants (its first texts)")
    if problems:
        raise ConfigError("\n".join(f"{config.source}: {p}" for p in problems))


def _says_something(campaign: Campaign, machine: Machine, config: Config) -> bool:
    number = config.number(campaign.numbers[0])
    assert number is not None
    state = machine.new_state(seed=0, context=config.context_for(number))
    return any(r.kind == "reply" for r in _first_turn(machine, state, "", "", 0.0, config).rows)


def _first_turn(machine: Machine, state: ConversationState, our: str, number: str,
                now: float, config: Config) -> Turn:
    """The conversation's first turn, as the actor would take it (replies at once)."""
    rules = TurnRules.of(config.optout, delays=_AT_ONCE, merge=False)
    return take_turn(TurnInput(conversation_id=0, our=our, their=number, machine=machine,
                               state=state), now, rules)


class CampaignWindows:
    """Keeps campaign texts inside their window. The sender is handed `hold`, which it calls
    just before a batch with campaign texts goes out; the server calls it on start-up."""

    def __init__(self, specs: dict[str, CampaignSpec], *, store: Store, clock: WallClock):
        self.specs = specs
        self._store = store
        self._clock = clock

    async def hold(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Campaign texts whose window has closed (recovered after a restart, or held up by the
        gateway until too late) wait for it to open again: their not-before moves there."""
        ids = [r.id for r in rows if r.kind == "campaign"]
        if not ids:
            return rows
        names = await self._store.call(CampaignRows(ids))
        now = self._clock.now()
        moves = []
        for row in rows:
            spec = self.specs.get(names.get(row.id, ""))
            if spec is None:
                continue
            zones = spec.zones(row.their_number)
            at = max(now, row.not_before)
            if spec.window.is_open(at, zones, 0.0):
                continue
            opens = spec.window.next_open(at, zones)
            if opens is not None:
                row.not_before = opens
                moves.append((row.id, opens))
        if moves:
            await self._store.call(Reschedule(moves, now=now))
            log.info("%d campaign texts outside their window wait for it to open", len(moves))
        return rows


class CampaignRunner:
    """Runs the [[campaigns]] of a server's config; `run` is one task of its services."""

    def __init__(self, services: CampaignServices, *, refresh: float = 300.0):
        self.services = services
        config = services.config
        check_campaigns(config, services.registry)
        self.specs = campaign_specs(config)
        self.refresh = refresh
        self._live: dict[str, _Live] = {}
        self._slots: dict[str, float] = {}
        """Our number -> when it may send its next campaign text."""
        self._last: dict[str, float] = {}
        """Campaign -> when it last texted."""
        self._wakeup = trio.Event()
        registry = services.metrics.registry
        self._texts = Counter("intercept_campaign_texts", "Campaign first texts committed",
                              ["campaign"], registry=registry)
        self._skips = Counter("intercept_campaign_skips", "Numbers a campaign did not text, by "
                              "reason", ["campaign", "reason"], registry=registry)

    # -- control

    def spec(self, name: str) -> CampaignSpec:
        """The campaign called `name`; LookupError naming the configured ones if none."""
        spec = self.specs.get(name)
        if spec is None:
            raise LookupError(f"no campaign {name!r} in the config (campaigns: "
                              f"{', '.join(sorted(self.specs)) or 'none'})")
        return spec

    async def start(self, name: str, *, actor: str) -> str | None:
        """Start or resume a campaign; returns its previous status (None: never started)."""
        spec = self.spec(name)
        previous = await self.services.store.call(SetCampaignStatus(
            name, "running", actor=actor, now=self.services.clock.now()))
        if name not in self._live:
            self._live[name] = _Live(spec, next_at=self._last.get(name, -math.inf)
                                     + spec.spacing)
        self._wakeup.set()
        if previous != "running":
            log.info("campaign %s started by %s", name, actor)
        return previous

    async def pause(self, name: str, *, actor: str) -> str | None:
        """Pause a campaign (no new texts); returns its previous status."""
        self.spec(name)
        previous = await self.services.store.call(SetCampaignStatus(
            name, "paused", actor=actor, now=self.services.clock.now()))
        self._live.pop(name, None)
        self._wakeup.set()
        if previous == "running":
            log.info("campaign %s paused by %s", name, actor)
        return previous

    def progress(self, name: str, counts: CampaignCounts, now: float) -> CampaignProgress:
        """The figures of campaign `name` from its stored `counts`, at `now`."""
        spec = self.spec(name)
        by_zones = collections.Counter(spec.zones(n) for n in counts.pending)
        held = sum(n for zones, n in by_zones.items() if not spec.window.is_open(now, zones))
        by = counts.by_text_status
        sent = by.get("sent", 0) + by.get("delivered", 0)
        queued = by.get("queued", 0) + by.get("sending", 0)
        return CampaignProgress(
            name=name, city=spec.campaign.city, status=counts.status or "idle",
            window=str(spec.window), started_at=counts.started_at,
            targets=counts.texted + sum(counts.skipped.values()) + len(counts.pending),
            texted=counts.texted, sent=sent, queued=queued,
            failed=counts.texted - sent - queued, held=held, waiting=len(counts.pending) - held,
            skipped=dict(counts.skipped), replied=counts.replied,
            handed_off=counts.handed_off, opted_out=counts.opted_out_after)

    # -- the task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        store, clock = self.services.store, self.services.clock
        state = await store.call(LoadCampaigns())
        self._last = dict(state.last_by_campaign)
        for name, status in state.status.items():
            spec = self.specs.get(name)
            if status == "running" and spec is not None:
                self._live[name] = _Live(spec, next_at=self._last.get(name, -math.inf)
                                         + spec.spacing)
        for number, at in state.last_by_number.items():
            spacing = min((s.per_number for s in self.specs.values()
                           if number in s.campaign.numbers), default=0.0)
            self._slots[number] = at + spacing
        if self._live:
            log.info("resuming campaigns: %s", ", ".join(sorted(self._live)))
        task_status.started()
        while True:
            self._wakeup = trio.Event()
            wake_at = math.inf
            for live in list(self._live.values()):
                try:
                    wake_at = min(wake_at, await self._advance(live))
                except Exception as exc:  # a bug must not take the server down: retry later
                    log.error("campaign %s: %s: %s; trying again in a minute", live.spec.name,
                              type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                    wake_at = min(wake_at, clock.now() + 60.0)
            if self._wakeup.is_set():
                continue
            if wake_at == math.inf:
                await self._wakeup.wait()
            else:
                with trio.move_on_at(clock.deadline(wake_at)):
                    await self._wakeup.wait()

    async def _advance(self, live: _Live) -> float:
        """Text what `live` may text now; return when to look at it again."""
        store, clock = self.services.store, self.services.clock
        spec = live.spec
        name, city = spec.name, spec.campaign.city
        now = clock.now()
        if live.refreshed_at is None or now >= live.refreshed_at + self.refresh:
            live.add(await store.call(PendingTargets(name, city)))
            live.refreshed_at = now
        refresh_at = live.refreshed_at + self.refresh
        while self._live.get(name) is live:
            now = clock.now()
            if live.next_at > now:
                return min(live.next_at, refresh_at)
            picked, opens = self._pick(live, now)
            for zones in [z for z in live.groups if z not in picked and z not in opens]:
                # the window is never open in all of these zones at once
                for _, number in live.groups.pop(zones):
                    await self._skip(spec, number, "no_window", now)
            if not picked:
                return min([refresh_at, *opens.values()])
            zones = min(picked, key=lambda z: live.groups[z][0][0])
            number = live.groups[zones][0][1]
            if number in self.services.optouts:
                live.done(zones)
                await self._skip(spec, number, "opted_out", now)
                continue
            health = self.services.number_health
            paused = health.paused
            ours = [n for n in spec.campaign.numbers if n not in paused]
            if not ours:  # every sending number is failing: wait for the next health check
                return min(refresh_at, now + health.interval)
            reason, free = await store.call(SendingNumbers(number, ours, now=now,
                                                           contact_after=spec.contact_after))
            if reason is not None or not free:
                live.done(zones)
                await self._skip(spec, number, reason or "in_conversation", now)
                continue
            our = min(free, key=lambda n: self._slots.get(n, -math.inf))
            if self._slots.get(our, -math.inf) > now:
                return min(self._slots[our], refresh_at)
            if self._live.get(name) is not live:
                break
            opening = self._opening(spec, our, number, now)
            result = await store.call(CampaignSend(
                campaign=name, city=city, number=number, our=our, opening=opening, now=now,
                contact_after=spec.contact_after))
            if result is None:
                continue  # `our` started talking with them meanwhile: choose again
            live.done(zones)
            if isinstance(result, str):
                self._skips.labels(campaign=name, reason=result).inc()
                continue
            self._sent(spec, live, our, number, opening, result, now)
        return math.inf

    def _pick(self, live: _Live, now: float
              ) -> tuple[list[tuple[str, ...]], dict[tuple[str, ...], float]]:
        """The zone groups open now, and when each closed one opens (never: left out)."""
        window = live.spec.window
        picked, opens = [], {}
        for zones in live.groups:
            at = window.next_open(now, zones)
            if at == now:
                picked.append(zones)
            elif at is not None:
                opens[zones] = at
        return picked, opens

    async def _skip(self, spec: CampaignSpec, number: str, reason: str, now: float) -> None:
        await self.services.store.call(CampaignSkip(spec.name, spec.campaign.city, number, reason,
                                                  now=now))
        self._skips.labels(campaign=spec.name, reason=reason).inc()
        log.debug("campaign %s skips %s: %s", spec.name, mask(number), reason)

    def _opening(self, spec: CampaignSpec, our: str, number: str, now: float) -> Opening:
        """The conversation as the first text leaves it: the scenario stepped past its start."""
        services = self.services
        campaign = spec.campaign
        machine = services.registry.current(campaign.scenario)
        if machine is None:
            raise LookupError(f"scenario {campaign.scenario!r} is not loaded")
        ours = services.config.number(our)
        assert ours is not None
        context = services.config.context_for(ours)
        state = machine.new_state(seed=seed_from(f"{campaign.name}:{number}"), context=context)
        turn = _first_turn(machine, state, our, number, now, services.config)
        state = turn.state
        texts = [r.body for r in turn.rows if r.kind == "reply"]
        tags = list(turn.tags)
        # the start step is turn 1, whatever the engine's count (as the actor records it)
        transitions = [msgspec.structs.replace(t, turn=1) for t in turn.transitions]
        variant = ""
        if campaign.variants:
            index, _ = choose(seed_from(f"variant:{campaign.name}:{number}"),
                              len(campaign.variants))
            variant = str(index + 1)
            texts = [Template(campaign.variants[index]).render(context)]
            records = {machine.nodes[t.target].record for t in transitions
                       if machine.nodes[t.target].kind == SPLIT}
            values = {k: v for k, v in state.vars.items() if k not in records}
            values["campaign_variant"] = variant
            state = msgspec.structs.replace(state, vars=values)
            tags = [f"campaign_variant:{variant}"]
            transitions = [FunnelMove(1, "", state.node, "campaign")]
        tags.append(f"campaign:{campaign.name}")
        # a variant changes only the state's variables, so the turn's status stands
        return Opening(scenario=state.scenario, version=state.version,
                       state=_encode(state).decode(), status=turn.status, outcome=state.outcome,
                       timer_at=state.timer_at, texts=texts, tags=tags,
                       transitions=transitions, variant=variant)

    def _sent(self, spec: CampaignSpec, live: _Live, our: str, number: str, opening: Opening,
              sent: CampaignSent, now: float) -> None:
        services = self.services
        self._slots[our] = now + spec.per_number
        live.next_at = now + spec.spacing
        self._last[spec.name] = now
        services.enqueue(sent.rows)
        if sent.timer_at is not None:
            services.schedule_timer(sent.conversation_id, sent.timer_at)
        services.metrics.conversations_started.inc()
        services.record(opening.scenario, opening.transitions,
                             opening.outcome, opening.status == "handed_off")
        self._texts.labels(campaign=spec.name).inc()
        log.debug("campaign %s texted %s from %s (conversation %d)", spec.name, mask(number),
                  our, sent.conversation_id)
