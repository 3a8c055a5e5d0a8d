"""Prometheus metrics of the SMPP client.

PDU counts are the hottest (six or more per message): they are a plain dict incremented in
place (~0.1 µs) and turned into a counter family only when scraped. Receipt counters cache
their labelled children.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .codec import CommandId, CommandStatus

_LATENCY = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _command_name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"0x{command_id:08x}"


def status_name(status: int) -> str:
    """ESME_ROK, ESME_RTHROTTLED... or the number in hex for a vendor-specific status."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08x}"


class SmppMetrics:
    """The client's collectors. Created unregistered; `register(registry)` adds them (once)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.pdu_counts: defaultdict[tuple[str, int, int], int] = defaultdict(int)
        """PDUs by (direction, command_id, status): a plain dict, read when scraped."""
        self.pdus = _PduCollector(self.pdu_counts)
        self.window_in_use = Gauge("intercept_smpp_window_in_use",
                                   "Requests sent and not yet answered", registry=None)
        self.window_size = Gauge("intercept_smpp_window_size", "The configured window",
                                 registry=None)
        self.submit_seconds = Histogram("intercept_smpp_submit_seconds",
                                        "Time from writing a submit_sm to its response",
                                        buckets=_LATENCY, registry=None)
        self.throttled = Counter("intercept_smpp_throttled",
                                 "submit_sm answered ESME_RTHROTTLED or ESME_RMSGQFUL",
                                 registry=None)
        self.send_rate = Gauge("intercept_smpp_send_rate_limit",
                               "Current submit_sm/s limit (0: none)", registry=None)
        self.reconnects = Counter("intercept_smpp_reconnects",
                                  "Connections lost or refused, followed by a reconnect",
                                  registry=None)
        self.bound = Gauge("intercept_smpp_bound", "1 while bound to the SMSC", registry=None)
        self.receipts = Counter("intercept_smpp_receipts", "Delivery receipts by state",
                                ["state"], registry=None)
        self.submit_timeouts = Counter("intercept_smpp_submit_timeouts",
                                       "submit_sm without a response in time", registry=None)
        self.reassembly_incomplete = Counter(
            "intercept_smpp_reassembly_incomplete",
            "Concatenated MO messages delivered with parts missing after the timeout",
            registry=None)
        self._collectors = (self.pdus, self.window_in_use, self.window_size, self.submit_seconds,
                            self.throttled, self.send_rate, self.reconnects, self.bound,
                            self.receipts, self.submit_timeouts, self.reassembly_incomplete)
        self._registered: set[int] = set()
        self._receipt_children: dict[str, Counter] = {}
        self.submit_observe = self.submit_seconds.observe
        if registry is not None:
            self.register(registry)

    def register(self, registry: CollectorRegistry) -> None:
        """Add the collectors to `registry`; a second call with the same registry is a no-op."""
        if id(registry) in self._registered:
            return
        for collector in self._collectors:
            registry.register(collector)
        self._registered.add(id(registry))

    def window_function(self, in_use: Callable[[], float]) -> None:
        """Read the window in use from the client when scraped (nothing to do per request)."""
        self.window_in_use.set_function(in_use)

    def pdu(self, direction: str, command_id: int, status: int = 0) -> None:
        self.pdu_counts[(direction, command_id, status)] += 1

    def receipt(self, state: str) -> None:
        child = self._receipt_children.get(state)
        if child is None:
            child = self._receipt_children[state] = self.receipts.labels(state)
        child.inc()


class _PduCollector(Collector):
    """intercept_smpp_pdus_total{direction, command, status} from the client's dict."""

    def __init__(self, counts: dict[tuple[str, int, int], int]):
        self.counts = counts

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily("intercept_smpp_pdus",
                                    "SMPP PDUs by direction, command and status",
                                    labels=["direction", "command", "status"])]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("intercept_smpp_pdus",
                                     "SMPP PDUs by direction, command and status",
                                     labels=["direction", "command", "status"])
        for (direction, command_id, status), value in sorted(self.counts.items()):
            family.add_metric([direction, _command_name(command_id), status_name(status)],
                              value)
        yield family
