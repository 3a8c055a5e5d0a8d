"""`Server`: the store, the router with its actors, the sender, the gateway and HTTP, wired.

Start-up follows the durability contract: unfinished work is read back from the store (replies
whose submit outcome is unknown are reconciled with the gateway, queued replies are scheduled,
conversations with unprocessed messages are woken, timers re-armed) before anything new is
taken in. Shutdown is graceful: intake stops, in-flight steps get `runtime.shutdown_grace` to
commit, and the writer flushes its queue under a shielded scope.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import trio

from .buyers.enrichment import Enricher
from .buyers.lookups import LookupSettings, TwilioLookup, install
from .buyers.media import MediaFetcher, cap_media
from .config import Config, load_config, store_key
from .console import Console, ConsoleServices
from .credential import credential_path, ensure_credential
from .errors import ConfigError, ScenarioErrors
from .foundation import collector
from .foundation.metrics import Metrics
from .foundation.phone import mask
from .foundation.private import tighten_tree
from .gateways import (
    Accepted,
    DeliveryReceipt,
    Gateway,
    InboundMessage,
    OutboundMessage,
    gateway_from_config,
)
from .http import App
from .http.services import HttpServices
from .outreach.campaigns import (
    CampaignRunner,
    CampaignServices,
    CampaignWindows,
    campaign_specs,
    check_campaigns,
)
from .runtime import DelayModel, Router, Sender, WallClock
from .runtime.config_reload import Reloaded, numbers_change, restart_only
from .runtime.handoff_alerts import AlertSettings, HandoffAlerts
from .runtime.lookups import Lookups, load_number_data, number_metadata
from .runtime.loop_lag import watch_loop_lag
from .runtime.number_health import NumberHealthMonitor
from .runtime.optouts import OptOuts
from .runtime.webhooks import Webhooks, WebhookSettings, unconfigured
from .scenarios import ReloadReport, ScenarioRegistry, compile_folder
from .store import (
    HandBack,
    Ingest,
    Ingested,
    IngestMany,
    MarkOutbox,
    OperatorSend,
    OutboxRow,
    Progress,
    ProgressInfo,
    Receipt,
    Recover,
    Recovery,
    Requeue,
    Store,
)
from .store.backup import run_schedule
from .store.campaigns import RegisterNumbers, Unprocessed
from .store.checkpoints import Checkpointer
from .store.faults import nursery_stopping_on_store_faults
from .store.handoffs import HandoffClaimed
from .store.identity import StoreId
from .store.lock import StoreLock
from .store.ops import Audit, ClaimedByAnother
from .store.retention import Kind, Purge, PurgeResult, purge_detail

log = logging.getLogger(__name__)


class Server:
    """One Intercept process. `await nursery.start(server.run)` returns once it is serving.

    The composition root: it builds every part and hands each the few services it uses
    (`Services` to actors through the router, `CampaignServices`, `HttpServices`), so no part
    holds the server. It is also the gateway's sink and the HTTP layer's `ServerActions`.
    """

    def __init__(self, config: Config, *, registry: ScenarioRegistry | None = None,
                 gateway: Gateway | None = None, store_path: str | Path | None = None,
                 fast: bool = False, http: bool | None = None, threaded_store: bool = True,
                 media: MediaFetcher | None = None, own_process: bool = False):
        self.config = config
        self.own_process = own_process
        """The process is this server's alone (`intercept serve`; an embedding program or a
        test decides for itself): before intake, load the number lookup data (`_preload`);
        sample the event loop's lag (`intercept_loop_lag_seconds`, a timer every 0.1 s); once
        started and recovered, collect and freeze what is alive (`collector.freeze`), then
        freeze what survives each collection and sweep every `runtime.collector_sweep`."""
        self.metrics = Metrics()
        self.registry = registry or ScenarioRegistry.from_dir(
            config.scenario_dir, read_limit=config.runtime.read_limit)
        missing = [f"numbers[{i}].scenario: no scenario named {n.scenario!r} in "
                   f"{config.scenario_dir} (have: {', '.join(self.registry.names()) or 'none'})"
                   for i, n in enumerate(config.numbers) if self.registry.current(n.scenario)
                   is None]
        if missing:
            raise ConfigError("\n".join(f"{config.source}: {m}" for m in missing))
        check_campaigns(config, self.registry)  # before the store is opened
        calls = unconfigured((self.registry.get(*key) for key in self.registry.versions()),
                             config.webhooks.calls)
        if calls:
            raise ConfigError("\n".join(f"{config.source}: {p.render()}" for p in calls))
        self.webhooks = Webhooks(WebhookSettings.from_config(config), metrics=self.metrics)
        """Makes the webhook calls scenarios ask for (runtime/webhooks.py)."""
        if config.webhooks.allow_private:
            log.warning("webhooks.allow_private is on: scenario webhooks may call private and "
                        "loopback addresses over plain http; for tests only, never in "
                        "production")
        self.gateway = gateway or gateway_from_config(config, metrics=self.metrics)
        self.gateway.use_metrics(self.metrics)
        self._lock = StoreLock(store_path or config.store.path)
        self._lock.acquire()  # one server per store, before the store is opened
        try:
            self.store = Store(store_path or config.store.path,
                               synchronous=config.store.synchronous,
                               batch_max=config.store.batch_max, metrics=self.metrics,
                               threaded=threaded_store, key=store_key(config))
        except BaseException:
            self._lock.release()
            raise
        self.checkpointer = (Checkpointer(self.store, metrics=self.metrics)
                             if config.store.checkpoints == "beside" else None)
        """Copies the write-ahead log into the database beside the writer, when configured."""
        self.metrics.watch_memory("store_conversations", self.store.cached_conversations,
                                  self.store.conversation_cache_size)
        self.metrics.watch_memory("number_lookups", lambda: number_metadata.cache_info().currsize,
                                  number_metadata.cache_info().maxsize or 0)
        self.clock = WallClock(anchor=False)
        """Unix time following trio's clock (anchored when `run` starts)."""
        tighten_tree(config.media_dir)  # photos of earlier versions or copies: 0600/0700
        self.media = media or MediaFetcher(
            store=self.store, config=config.media, media_dir=config.media_dir,
            metrics=self.metrics, credentials=self.gateway.media_credentials(),
            threaded=threaded_store)
        """Fetches the photos buyers send (rows written with their message)."""
        self.lookups = Lookups(metrics=self.metrics)
        settings = LookupSettings.from_config(config)
        self.lookup_provider = None if settings is None else TwilioLookup(
            store=self.store, settings=settings, clock=self._now, metrics=self.metrics)
        install(self.lookups, self.lookup_provider)
        self.enricher = Enricher(store=self.store, clock=self._now, threaded=threaded_store)
        """Offline metadata of every new buyer number, off the message path."""
        health = config.health
        self.number_health = NumberHealthMonitor(
            store=self.store, numbers=[n.number for n in config.numbers], clock=self._now,
            registry=self.metrics.registry, window=float(health.window),
            min_messages=health.min_messages, pause_share=health.pause_share,
            interval=float(health.interval))
        """Failed deliveries per number; campaigns skip the paused ones."""
        self.handoff_alerts = HandoffAlerts(
            store=self.store, settings=AlertSettings.from_config(config), clock=self._now,
            registry=self.metrics.registry, send_sms=lambda rows: self.sender.enqueue(rows))
        """Alerts for new hand-offs (SMS to the on-call advocate, webhook) and their metrics."""
        self.delays = DelayModel.from_config(config.delays, enabled=False if fast else None)
        self.optouts = OptOuts(store=self.store, metrics=self.metrics, now=self._now)
        """Who may be texted: asked by the sender, actors, campaigns and take-overs."""
        self.campaign_windows = CampaignWindows(campaign_specs(config), store=self.store,
                                                clock=self.clock)
        self.sender = Sender(store=self.store, gateway=self.gateway, clock=self.clock,
                             metrics=self.metrics, optouts=self.optouts,
                             hold=self.campaign_windows.hold)
        self.router = Router(
            store=self.store, sender=self.sender, registry=self.registry, config=config,
            clock=self.clock, metrics=self.metrics, delays=self.delays, optouts=self.optouts,
            hibernate_after=float(config.runtime.hibernate_after),
            inbox_size=config.runtime.inbox_size, max_crashes=config.runtime.max_crashes,
            lookups=self.lookups, webhooks=self.webhooks)
        self.campaigns = CampaignRunner(CampaignServices(
            config=config, registry=self.registry, store=self.store, clock=self.clock,
            metrics=self.metrics, optouts=self.optouts, number_health=self.number_health,
            enqueue=self.sender.enqueue, schedule_timer=self.router.schedule_timer,
            record=self.router.record))
        """Victim-outreach campaigns (intercept/outreach/campaigns.py)."""
        self.http_enabled = config.http.enabled if http is None else http
        self.http_services = HttpServices(
            config=config, store=self.store, metrics=self.metrics, gateway=self.gateway,
            campaigns=self.campaigns, number_health=self.number_health,
            registry=self.registry, now=self._now, actions=self)
        """What the HTTP app and API are handed (intercept/http/services.py)."""
        self.app = App(self.http_services) if self.http_enabled else None
        """Built here so that a bad API token file is a start-up error, not a traceback."""
        self.console = self._console(self.app) if self.app is not None else None
        """The web console, mounted at / beside the API (intercept/console)."""
        self.http_addresses: list[str] = []
        self.monitor_addresses: list[str] = []
        """Where only /healthz and /metrics are served (http.monitor_listen), if anywhere."""
        self._stop = trio.Event()
        self._reloading = trio.Lock()
        self.store_id: str | None = None
        """The store's random id (intercept/store/identity.py), in /healthz for the CLI."""

    # -- life cycle

    def stop(self) -> None:
        """Ask for a graceful shutdown; `run()` returns when it is done."""
        self._stop.set()

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        self.clock.anchor()
        try:
            with self.metrics.watching_gc():
                await self._serve(task_status)
        finally:
            self.store.shutdown()
            self._lock.release()
        log.info("stopped")

    async def _serve(self, task_status: trio.TaskStatus[Server]) -> None:
        config = self.config
        async with trio.open_nursery() as root:
            await root.start(self.store.run)
            try:
                self.store_id = await self.store.call(StoreId())
                await self._register_numbers()
                if self.http_enabled:  # the local CLI's admin token (intercept/credential.py)
                    await ensure_credential(self.store, credential_path(config, self.store.path),
                                            now=self.clock.now())
                async with nursery_stopping_on_store_faults(self._stop) as services:
                    if self.checkpointer is not None:  # ends before the store closes
                        await services.start(self.checkpointer.run)
                    await services.start(self.router.run)
                    await services.start(self.sender.run)
                    recovery = await self.store.call(Recover())  # before any new work
                    await services.start(self.media.run)  # pending media, then new ones
                    if self.own_process:
                        await self._preload()
                    intake = trio.CancelScope()
                    await services.start(self._run_intake, intake)
                    await self.campaign_windows.hold(recovery.queued)  # quiet hours after a stop
                    await self._recover(recovery)
                    await services.start(self.number_health.run)
                    if self.own_process:
                        await services.start(watch_loop_lag, self.metrics.loop_lag_seconds)
                    await services.start(self.handoff_alerts.run)
                    await services.start(self.campaigns.run)
                    await services.start(self.enricher.run)
                    if config.retention.buyer_after or config.retention.outreach_after:
                        services.start_soon(self._run_retention)
                    if config.store.backup_every:
                        services.start_soon(partial(
                            run_schedule, self.store.path, self.backup_dir,
                            every=float(config.store.backup_every),
                            keep=config.store.backup_keep, key=self.store.key,
                            clock=self._now, threaded=self.store.threaded,
                            metrics=self.metrics))
                    log.info("serving %d numbers; gateway %s%s", len(config.numbers),
                             self.gateway.name,
                             f"; http on {', '.join(self.http_addresses)}"
                             if self.http_addresses else "")
                    if self.own_process:  # scenarios, config, caches, recovered actors, lookup
                        # data: out of the collector's sight
                        log.info("%d long-lived objects frozen out of the collector's walks",
                                 collector.freeze())
                        if config.runtime.collector_sweep:  # and what survives collections
                            services.start_soon(collector.keep_frozen,
                                                float(config.runtime.collector_sweep), _swept)
                    task_status.started(self)
                    await self._stop.wait()
                    log.info("shutting down: intake stopped, finishing in-flight steps")
                    intake.cancel()
                    self.store.stopping()  # a store that cannot commit is not waited for ever
                    with trio.move_on_after(float(config.runtime.shutdown_grace)):
                        await self.router.quiesce()
                    services.cancel_scope.cancel()
                if self.lookup_provider is not None:
                    with trio.CancelScope(shield=True):
                        await self.lookup_provider.aclose()
                await self.webhooks.aclose()
            finally:
                self.store.close()  # the writer commits what is queued, then returns

    async def _preload(self) -> None:
        """Load the number lookup data (~100 MB) now, before any text arrives.

        Every new buyer number needs it (the enricher; a scenario's `lookup: number`). Loaded in
        a worker thread under load, its modules still hold the interpreter lock ~0.25 s each,
        for seconds: every conversation would stall behind it (docs/performance.md).
        """
        started = trio.current_time()
        await trio.to_thread.run_sync(load_number_data)
        log.info("number lookup data loaded in %.1f s", trio.current_time() - started)

    async def _run_intake(self, scope: trio.CancelScope, *,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(self.gateway.run, self))
                if self.http_enabled:
                    from .http.limits import serve_http

                    self.http_addresses, self.monitor_addresses = await nursery.start(
                        serve_http, self.app, self.config.http, self.metrics)
                    self.gateway.listening(self.http_addresses)
                task_status.started()

    def _now(self) -> float:
        return self.clock.now()

    @property
    def backup_dir(self) -> Path:
        """``store.backup_dir``, relative to the folder of the store file."""
        return Path(self.store.path).parent / self.config.store.backup_dir

    async def _run_retention(self) -> None:
        """Purge on `retention.interval`: buyer, then outreach conversations (each audited)."""
        retention = self.config.retention
        while True:
            for kind, after in (("buyer", retention.buyer_after),
                                ("outreach", retention.outreach_after)):
                if not after:
                    continue
                result = await self.purge(kind, float(after))  # type: ignore[arg-type]
                await self.store.call(Audit(
                    at=self.clock.now(), actor="retention", role="server",
                    action=f"scheduled purge {kind}", status=200,
                    detail=purge_detail(result, after)))
            await trio.sleep(float(retention.interval))

    async def purge(self, kind: Kind, older_than: float, *, dry_run: bool = False
                    ) -> PurgeResult:
        """Delete `kind` conversations idle for longer than `older_than` seconds, in the writer,
        then the media files no row refers to any more (docs/evidence.md#retention)."""
        now = self.clock.now()
        guard = self.config.retention.replay_guard
        result: PurgeResult = await self.store.call(
            Purge(kind, cutoff=now - older_than, now=now, dry_run=dry_run,
                  replay_guard=float(guard) if guard else 0.0))
        if result.unreferenced:
            result.files_deleted = await trio.to_thread.run_sync(
                _delete_media, self.config.media_dir, result.unreferenced)
        if result.conversations and not dry_run:
            log.info("purged %d %s conversations idle for over %ds (%d media files deleted)",
                     result.conversations, kind, older_than, result.files_deleted)
        return result

    async def _register_numbers(self, config: Config | None = None) -> None:
        """Record each number's kind, so conversations are marked buyer or outreach."""
        config = config or self.config
        problems = await self.store.call(RegisterNumbers(
            [(n.number, n.kind, n.city) for n in config.numbers], now=self.clock.now()))
        if problems:
            raise ConfigError("\n".join(f"{config.source}: numbers: {p}" for p in problems))

    async def _recover(self, recovery: Recovery) -> None:
        now = self.clock.now()
        if recovery.sending:
            sent: list[str] = []
            gateway_ids: list[str | None] = []
            requeue: list[str] = []
            unknown: list[str] = []
            for row, since in recovery.sending:
                outcome = await self.gateway.reconcile(
                    OutboundMessage(outbox_id=row.id, our_number=row.our_number,
                                    their_number=row.their_number, text=row.body), since=since)
                if outcome is None:
                    unknown.append(row.id)
                elif outcome.sent:
                    sent.append(row.id)
                    gateway_ids.append(outcome.gateway_id)
                else:
                    requeue.append(row.id)
            if sent:
                await self.store.call(MarkOutbox(sent, "sent", now=now, gateway_ids=gateway_ids))
            if requeue:
                self.sender.enqueue(await self.store.call(Requeue(requeue, now=now)))
            if unknown:
                await self.store.call(MarkOutbox(unknown, "unknown", now=now,
                                                 error="outcome unknown after a restart"))
                log.warning("%d replies were being submitted when the server stopped and the "
                            "gateway cannot tell whether they went out: marked 'unknown', not "
                            "resent", len(unknown))
        self.optouts.load(recovery.opted_out)
        self.sender.enqueue(recovery.queued)
        for conversation_id in recovery.wake:
            self.router.wake(conversation_id)
        woken = set(recovery.wake)
        for conversation_id, at in recovery.timers:
            if conversation_id not in woken:
                self.router.schedule_timer(conversation_id, at)
        if recovery.queued or recovery.wake or recovery.timers:
            log.info("recovered %d queued replies, %d conversations with unprocessed messages, "
                     "%d timers", len(recovery.queued), len(recovery.wake), len(recovery.timers))

    # -- the gateway's sink

    async def inbound(self, message: InboundMessage) -> Accepted:
        """Commit an inbound message, then route it. The gateway acks after this returns."""
        (accepted,) = await self.inbound_many([message])
        return accepted

    async def inbound_many(self, messages: list[InboundMessage]) -> list[Accepted]:
        """Commit a burst of inbound messages in one operation, then route them."""
        received_at = self.clock.now()
        name = self.gateway.name
        messages = cap_media(messages, self.config.media.max_per_message, self.metrics)
        op = IngestMany([Ingest(gateway=name, gateway_id=m.gateway_id, our=m.our_number,
                                their=m.their_number, body=m.text, media=m.media,
                                received_at=received_at) for m in messages])
        # refused with StoreUnavailable while the store cannot commit: the gateway answers in
        # its retry form and the network delivers the message again later
        results: list[Ingested] = await self.store.call(op, refusable=True)
        deliver = self.router.deliver
        fresh = 0
        for message, ingested in zip(messages, results, strict=True):
            if ingested.duplicate:
                if ingested.replay:
                    log.warning("a message from %s purged by retention was delivered again "
                                "(a replay): dropped", mask(message.their_number))
                continue
            fresh += 1
            deliver(ingested.conversation_id, ingested.conv_seq, message.text, message.media,
                    received_at)
        if fresh:
            self.metrics.messages_in.inc(fresh)
            if any(i.conv_seq == 1 and not i.duplicate for i in results):
                self.enricher.wake()  # a new conversation: maybe a new buyer number
            if any(m.media for m in messages):
                self.media.wake()
        if fresh < len(messages):
            self.metrics.messages_in_duplicate.inc(len(messages) - fresh)
        return [Accepted(i.conversation_id, i.conv_seq, i.duplicate, i.replay) for i in results]

    async def receipts(self, receipts: list[DeliveryReceipt], *, wait: bool = False) -> None:
        """Record delivery receipts (queued for the next commit, or committed with `wait`)."""
        op = Receipt([(r.gateway_id, r.status, r.error) for r in receipts if r.outbox_id is None],
                     now=self.clock.now(),
                     by_outbox=[(r.outbox_id, r.gateway_id, r.status, r.error)
                                for r in receipts if r.outbox_id is not None])
        await (self.store.call(op, refusable=True) if wait else self.store.post(op))

    async def carrier_opt_out(self, their_number: str) -> None:
        """The network says this number opted out: never text it again (until it opts in)."""
        await self.optouts.carrier(their_number)

    # -- introspection

    async def progress(self, conversation_id: int) -> ProgressInfo | None:
        return await self.store.call(Progress(conversation_id))

    async def settled(self, conversation_id: int, conv_seq: int, *, poll: float = 0.02) -> None:
        """Wait until message `conv_seq` is processed and every reply so far has been sent."""
        while True:
            info = await self.progress(conversation_id)
            if info is None or info.status == "parked" or (
                    info.processed_count >= conv_seq and info.unsent == 0):
                return
            await trio.sleep(poll)

    def _console(self, app: App) -> Console:
        """The console on the API's own reads, tokens and handlers, mounted on `app`."""
        console = Console(ConsoleServices(
            config=self.config, store=self.store, metrics=self.metrics, registry=self.registry,
            now=self._now, health=self.health, reads=app.reads, access=app.access, api=app.api))
        app.mounted.append(console)
        return console

    async def take_over(self, conversation_id: int, text: str, *, author: str,
                        override: bool = False) -> OutboxRow:
        """A human texts into a conversation; the bot stays silent until `hand_back`.

        Raises `LookupError` for an unknown conversation and `PermissionError` when the
        number opted out (the send path would refuse the message anyway) or another advocate
        has claimed its hand-off (`HandoffClaimed`; `override`, for an admin, texts anyway).
        """
        if not text.strip():
            raise ValueError("the message is empty")
        row = await self.store.call(OperatorSend(conversation_id, text, author=author,
                                                 now=self.clock.now(), override=override))
        if row is None:
            raise LookupError(f"no conversation {conversation_id}")
        if isinstance(row, ClaimedByAnother):
            raise HandoffClaimed(row.advocate)
        if row.their_number in self.optouts:
            await self.store.call(MarkOutbox([row.id], "refused", now=self.clock.now(),
                                             error="opted out"))
            raise PermissionError("the number opted out: nothing more may be sent to it")
        self.sender.enqueue([row])
        self.router.poke(conversation_id)
        log.info("conversation %d taken over by %s", conversation_id, author)
        return row

    async def hand_back(self, conversation_id: int, *, author: str) -> None:
        """Give a taken-over or handed-off conversation back to the bot."""
        if not await self.store.call(HandBack(conversation_id, now=self.clock.now())):
            raise LookupError(f"no conversation {conversation_id}")
        self.router.poke(conversation_id, wake=True)
        log.info("conversation %d handed back to the bot by %s", conversation_id, author)

    async def reload(self) -> Reloaded:
        """Take the config file's [[numbers]] and [cities] and the scenario folder again, all
        or nothing: raise `ConfigError` (the file is invalid, changes what only a restart
        can, or makes an outreach number a buyer number) or `ScenarioErrors`, changing nothing.

        Live conversations keep the scenario version, persona and city they started with;
        new ones take the new ones. A removed number starts no new conversation (its
        messages wait, as any unknown number's, until it is added again); its live
        conversations go on to their end. A number added takes the messages that waited.
        """
        async with self._reloading:
            config = await trio.to_thread.run_sync(self._read_config) or self.config
            found = await trio.to_thread.run_sync(partial(
                compile_folder, config.scenario_dir, read_limit=config.runtime.read_limit))
            required = ({n.scenario for n in config.numbers}
                        | {c.scenario for c in config.campaigns})
            problems = self.registry.problems(found, required=required)
            problems += unconfigured((m for m, _, _ in found), self.config.webhooks.calls)
            if problems:
                raise ScenarioErrors(problems)
            change = numbers_change(self.config, config)
            if change.any:
                alerts = AlertSettings.from_config(config)  # may refuse: read before writing
                await self._register_numbers(config)  # refuses, writing nothing
            report = self.registry.apply(found, required=required)
            if change.any:
                self._take_numbers(config, alerts)
                for conversation_id in await self.store.call(Unprocessed(change.added)):
                    self.router.wake(conversation_id)
        reloaded = Reloaded(report, change)
        log.info("reloaded: %s", reloaded.summary())
        return reloaded

    async def reload_scenarios(self) -> ReloadReport:
        """`reload`, for callers that look only at the scenarios."""
        return (await self.reload()).scenarios

    def _read_config(self) -> Config | None:
        """The config file read again (None: this server's config came from no file), or
        `ConfigError` when it is invalid or changes what a running server cannot take."""
        source = Path(self.config.source) if self.config.source else None
        if source is None or not source.is_file():
            return None
        config = load_config(source)
        keys = restart_only(self.config, config)
        if keys:
            raise ConfigError(
                f"{source}: {', '.join(keys)} changed; a running server takes only [[numbers]] "
                "and [cities] from the file (the rest at a restart): reload refused, the "
                "running config and scenario versions stay")
        return config

    def _take_numbers(self, config: Config, alerts: AlertSettings) -> None:
        """Make `config`'s numbers and cities the running ones, for everything that uses
        them: actors, campaigns and the API read the shared config; these keep copies."""
        self.config.take_numbers(config)
        self.number_health.numbers = [n.number for n in config.numbers]
        self.handoff_alerts.settings = alerts  # the on-call text's default sender

    def health(self) -> dict[str, Any]:
        failing = self.store.failing
        health: dict[str, Any] = {
            "status": "failing" if failing else "ok", "gateway": self.gateway.name,
            "store": "failing" if failing else "ok", "live_actors": len(self.router.actors),
            "outbox_depth": len(self.sender), "store_id": self.store_id or ""}
        if failing:
            health["store_failure"] = failing  # "disk full", "I/O error", "corrupt"...
        return health


def _delete_media(media_dir: Path, hashes: list[str]) -> int:
    """Delete the media files of `hashes`; return how many were there."""
    from .buyers.media import media_path

    deleted = 0
    for digest in hashes:
        try:
            media_path(media_dir, digest).unlink()
            deleted += 1
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("retention: cannot delete media file %s: %s", digest, exc)
    return deleted


def _swept(swept: collector.Sweep) -> None:
    log.info("collector sweep: %d objects in garbage cycles freed, %d alive frozen, %.0f ms",
             swept.freed, swept.frozen, swept.seconds * 1000)
