"""Prometheus metrics. One `Metrics` per server, on its own registry (tests run several)."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from . import collector

_FAST = (.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .1)
_COMMIT = (.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1.0)
_WEBHOOK = (.05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
_BATCH = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_LAG = (.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1.0, 2.5, 5.0)


class _Memories:
    """The server's bounded memories (caches, dedupe windows): entries now, and the bound.

    Read when scraped (a `len()` each), so keeping them costs nothing per message."""

    def __init__(self) -> None:
        self.watched: dict[str, tuple[Callable[[], int], int]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        entries = GaugeMetricFamily(
            "intercept_memory_entries", "Entries in one of the server's bounded memories "
            "(caches, dedupe windows), by memory", labels=["memory"])
        bounds = GaugeMetricFamily(
            "intercept_memory_bound", "The most entries that memory keeps (the oldest or least "
            "recently used go first)", labels=["memory"])
        for name, (size, bound) in sorted(self.watched.items()):
            entries.add_metric([name], size())
            bounds.add_metric([name], bound)
        yield entries
        yield bounds


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.memories = _Memories()
        r.register(self.memories)  # type: ignore[arg-type]
        self.live_actors = Gauge("intercept_live_actors", "Conversation actors with a running task",
                                 registry=r)
        self.conversations_started = Counter(
            "intercept_conversations_started", "Conversations started", registry=r)
        self.conversations_ended = Counter(
            "intercept_conversations_ended", "Conversations ended, by outcome", ["outcome"],
            registry=r)
        self.messages_in = Counter("intercept_messages_in", "Inbound messages committed",
                                   registry=r)
        self.messages_in_duplicate = Counter(
            "intercept_messages_in_duplicate", "Inbound messages dropped as redeliveries",
            registry=r)
        self.messages_out = Counter("intercept_messages_out", "Messages submitted to the gateway",
                                    registry=r)
        self.messages_out_failed = Counter(
            "intercept_messages_out_failed", "Submits the gateway refused", registry=r)
        self.engine_step_seconds = Histogram(
            "intercept_engine_step_seconds", "Time in engine.step()", buckets=_FAST, registry=r)
        self.actor_crashes = Counter("intercept_actor_crashes", "Exceptions caught at the actor "
                                     "boundary", registry=r)
        self.actor_restarts = Counter("intercept_actor_restarts", "Actors restarted from their "
                                      "last committed state", registry=r)
        self.conversations_parked = Counter(
            "intercept_conversations_parked", "Conversations parked after repeated crashes",
            registry=r)
        self.hibernations = Counter("intercept_actor_hibernations", "Idle actors whose task ended",
                                    registry=r)
        self.wakes = Counter("intercept_actor_wakes", "Actors started for a stored conversation",
                             registry=r)
        self.store_commit_seconds = Histogram(
            "intercept_store_commit_seconds", "Time to commit one batch", buckets=_COMMIT,
            registry=r)
        self.store_batch_size = Histogram(
            "intercept_store_batch_size", "Operations per committed batch", buckets=_BATCH,
            registry=r)
        self.store_checkpoint_seconds = Histogram(
            "intercept_store_checkpoint_seconds", "Time to copy the write-ahead log into the "
            "database beside the writer (one checkpoint)", buckets=_COMMIT, registry=r)
        self.store_log_pages = Gauge(
            "intercept_store_log_pages", "Pages in the write-ahead log at the last checkpoint "
            "beside the writer", registry=r)
        self.store_failures = Counter(
            "intercept_store_failures", "Commit attempts the store refused, by kind (disk full, "
            "I/O error, read-only, locked, corrupt...)", ["kind"], registry=r)
        self.store_failing = Gauge(
            "intercept_store_failing", "1 while the store cannot commit (intake is refused)",
            registry=r)
        self.outbox_depth = Gauge("intercept_outbox_depth", "Replies waiting to be sent",
                                  registry=r)
        self.transitions = Counter(
            "intercept_scenario_transitions", "Moves between scenario states (the funnel)",
            ["scenario", "source", "target"], registry=r)
        self.handoffs = Counter("intercept_handoffs", "Conversations handed to a human",
                                registry=r)
        self.lookups = Counter("intercept_lookups", "Lookups requested by scenarios, by kind "
                               "and result", ["kind", "result"], registry=r)
        self.webhook_calls = Counter(
            "intercept_webhook_calls", "Scenario webhook calls, by webhook and result (ok, "
            "timeout, failed, refused)", ["call", "result"], registry=r)
        self.webhook_seconds = Histogram(
            "intercept_webhook_seconds", "Time of a scenario webhook call, retries included",
            ["call"], buckets=_WEBHOOK, registry=r)
        self.opt_outs = Counter("intercept_opt_outs", "Numbers that opted out", registry=r)
        self.refused = Counter("intercept_messages_refused", "Messages the send path refused "
                               "(opted-out recipient)", registry=r)
        self.unrouted = Counter("intercept_messages_unrouted", "Inbound messages to a number that "
                                "is not configured", registry=r)

        self.media = Counter("intercept_media", "Inbound media (photos), by result: stored, "
                             "refused, failed, retry, dropped (over media.max_per_message)",
                             ["result"], registry=r)
        self.media_bytes = Counter("intercept_media_bytes", "Bytes of media stored", registry=r)
        self.webhooks = Counter("intercept_webhooks", "Provider webhooks, by kind (message, "
                                "status) and result (ok, duplicate, forbidden, invalid, "
                                "unavailable)",
                                ["kind", "result"], registry=r)
        self.provider_requests = Counter(
            "intercept_provider_requests", "REST calls to an HTTP SMS provider, by operation and "
            "result", ["operation", "result"], registry=r)
        self.provider_seconds = Histogram(
            "intercept_provider_seconds", "Time of one REST call to an HTTP SMS provider",
            buckets=_COMMIT, registry=r)
        self.api_auth_failures = Counter(
            "intercept_api_auth_failures", "Admin API requests refused before authentication, "
            "by reason: missing, malformed or invalid token, locked (the address is locked out "
            "after repeated failures)", ["reason"], registry=r)

        self.http_refused = Counter(
            "intercept_http_refused", "HTTP requests cut short by the limits of [http], by "
            "reason (body_timeout, evicted: a slow body closed to make room, busy)", ["reason"],
            registry=r)

        self.gc_pause_seconds = Histogram(
            "intercept_gc_pause_seconds", "Garbage collections of the server process, by "
            "generation, or 'sweep' for the scheduled sweeps of runtime.collector_sweep (the "
            "whole process stops while one runs)", ["generation"],
            buckets=_COMMIT, registry=r)
        self._gc_started = 0.0
        self.loop_lag_seconds = Histogram(
            "intercept_loop_lag_seconds", "How late the event loop woke a timer, sampled every "
            "0.1 s: while it is late, no conversation moves (a collection, a long step)",
            buckets=_LAG, registry=r)
        self.backups = Counter("intercept_backups", "Scheduled backups of the store, by result "
                               "(ok, failed)", ["result"], registry=r)
        self.backup_last_success = Gauge(
            "intercept_backup_last_success_timestamp_seconds",
            "When the last scheduled backup succeeded (Unix time; 0: none yet)", registry=r)

    def watch_memory(self, name: str, size: Callable[[], int], bound: int) -> None:
        """Export a bounded memory's entries (`size()`, read when scraped) and its bound."""
        self.memories.watched[name] = (size, bound)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            generation = "sweep" if collector.sweeping() else str(info["generation"])
            self.gc_pause_seconds.labels(generation).observe(
                time.perf_counter() - self._gc_started)

    @contextlib.contextmanager
    def watching_gc(self) -> Iterator[None]:
        """Time the process's garbage collections while the block runs."""
        gc.callbacks.append(self._on_gc)
        try:
            yield
        finally:
            gc.callbacks.remove(self._on_gc)

    def render(self) -> bytes:
        return generate_latest(self.registry)
