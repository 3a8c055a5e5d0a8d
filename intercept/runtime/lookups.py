"""Lookups a scenario can ask for; each answer goes back to the engine as a `LookupResult`.

Built in: `number`, offline metadata of the other side's number from `phonenumbers` (valid,
type, region, time zone, carrier and place where known). Its geocoder and carrier data cost
~100 MB and 3-5 s to load, in ~30 module imports that each hold the interpreter lock for
~0.25 s, in whichever thread loads them: `intercept serve` loads them before intake
(`load_number_data`); otherwise the first lookup loads them, in a worker thread. More providers
(caller name over HTTP) register with `Lookups.register`.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import phonenumbers
import trio

from ..engine import LOOKUP_KINDS, LookupResult
from ..foundation.phone import mask

log = logging.getLogger(__name__)

Provider = Callable[[str, str], Awaitable[dict[str, str]]]
"""provider(their_number, our_number) -> fields; raise to report a failure."""

_TYPES = {v: k.lower() for k, v in vars(phonenumbers.PhoneNumberType).items()
          if isinstance(v, int)}


@functools.lru_cache(maxsize=10_000)
def number_metadata(number: str) -> dict[str, str]:
    """What `phonenumbers` knows of `number`, offline (slow on first call: loads data).

    Cached for the scenario's `lookup: number` and the enricher, which ask for the same new
    number within seconds of each other (~320 bytes an entry; a miss costs ~0.1 ms)."""
    from phonenumbers import carrier, geocoder, timezone

    parsed = phonenumbers.parse(number, None)
    fields = {
        "valid": "yes" if phonenumbers.is_valid_number(parsed) else "no",
        "type": _TYPES.get(phonenumbers.number_type(parsed), "unknown"),
        "region": phonenumbers.region_code_for_number(parsed) or "",
        "place": geocoder.description_for_number(parsed, "en"),
        "carrier": carrier.name_for_number(parsed, "en"),
        "timezone": ",".join(z for z in timezone.time_zones_for_number(parsed)
                             if z != "Etc/Unknown"),
    }
    global _number_data_loaded
    if not _number_data_loaded:
        _number_data_loaded = True
        # ~100 MB of tables that live as long as the process: out of the cyclic collector's
        # sight, or every full collection walks them (pauses of a few hundred ms under load)
        gc.freeze()
    return {k: v for k, v in fields.items() if v}


_number_data_loaded = False
"""The process has loaded the geocoder and carrier data (by any caller of `number_metadata`,
e.g. the buyer-number enricher): later lookups need no worker thread."""


def load_number_data() -> None:
    """Load the geocoder and carrier data now, if not yet loaded (seconds: a worker thread)."""
    if not _number_data_loaded:
        number_metadata("+12065550100")


class Lookups:
    def __init__(self, *, timeout: float = 10.0, metrics: Any = None):
        self.timeout = timeout
        self.metrics = metrics
        self._providers: dict[str, Provider] = {"number": self._number}
        self._number_data_loaded = False
        self._number_data_lock = trio.Lock()

    def register(self, kind: str, provider: Provider) -> None:
        if kind not in LOOKUP_KINDS:  # the compiler refuses scenarios asking for other kinds
            raise ValueError(f"lookup kind {kind!r} is not in intercept.engine.LOOKUP_KINDS: "
                             "add it there, or no scenario can ask for it")
        self._providers[kind] = provider

    async def lookup(self, kind: str, their_number: str, our_number: str) -> LookupResult:
        provider = self._providers.get(kind)
        if provider is None:
            result = LookupResult(kind, False, {"error": f"no lookup provider for {kind!r}"})
        else:
            try:
                with trio.fail_after(self.timeout):
                    result = LookupResult(kind, True, await provider(their_number, our_number))
            except trio.TooSlowError:
                result = LookupResult(kind, False, {"error": "timed out"})
            except Exception as exc:  # a provider's failure is an answer the scenario handles
                log.warning("lookup %s for %s failed: %s", kind, mask(their_number), exc)
                result = LookupResult(kind, False, {"error": str(exc)})
        if self.metrics is not None:
            self.metrics.lookups.labels(kind=kind, result="ok" if result.ok else "failed").inc()
        return result

    async def _number(self, their_number: str, our_number: str) -> dict[str, str]:
        if not self._number_data_loaded and not _number_data_loaded:
            # The first call loads ~100 MB of data: once, in a worker thread, while other
            # lookups wait (abandon_on_cancel: a timed-out lookup must not hold anyone up).
            async with self._number_data_lock:
                if not self._number_data_loaded:
                    await trio.to_thread.run_sync(number_metadata, their_number,
                                                  abandon_on_cancel=True)
                    self._number_data_loaded = True
        return dict(number_metadata(their_number))  # tens of µs once loaded: no thread
