"""The buyers' side of the network: the SMSC simulator (SMPP) or the fake Twilio provider.

Both hand every message a phone receives to a callback as a `Reply`, stamped with the time it
reached the network (the SMSC accepting the submit_sm, the provider accepting the REST call),
and inject faults on our server's outbound path:

- `throttle`: SMPP answers ESME_RTHROTTLED (not accepted); the provider answers 429 (nothing
  created). The SMPP client halves its send rate on throttles, at most once a second, so random
  throttling of every submit holds its rate far down (see docs/performance.md);
- `error`: ESME_RSYSERR (not accepted) / HTTP 500 (nothing created);
- `slow`: SMPP accepts and answers after `slow_seconds`; the provider never answers and creates
  nothing (the client times out, looks the message up, sends again);
- `drop`: SMPP drops the connection before accepting the submit (at most one drop per 2 s, so
  the link comes back between drops); the provider creates the message and closes the
  connection without a response (the client must find it, not resend it);
- `lost_resp` (SMPP only): accepted, then the connection drops before the answer: the
  documented at-least-once edge (docs/smpp.md), which resends it, so it shows as duplicates.
  `slow` and `drop` together can drop a connection while a slow answer is pending: the same
  edge, the same duplicates.

Each is a probability per submit, drawn from a seeded generator.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Protocol

import httpx
import trio

from intercept.gateways.smpp import BindTransceiver, BindTransmitter, CommandStatus, SubmitSm
from loadtest.fake_provider import Callbacks, FakeTwilio, Faults
from loadtest.ledger import Reply
from loadtest.smsc import Smsc

SMPP_FAULTS = ("drop", "throttle", "slow", "error", "lost_resp")
PROVIDER_FAULTS = ("drop", "throttle", "slow", "error")
DROP_COOLDOWN = 2.0
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"

OnReply = Callable[[Reply], None]


class Phones(Protocol):
    """What the buyers text through."""

    name: str
    faults_injected: Counter[str]

    async def send(self, their: str, our: str, text: str, *, photo: bool = False) -> bool:
        """Hand one buyer message to the network; False if it could not be handed over."""
        ...

    def stats(self) -> dict[str, int]:
        """Transport counters for the report."""
        ...


class FaultySmsc(Smsc):
    """The SMSC simulator, reporting each message a phone receives and injecting faults."""

    def __init__(self, on_reply: OnReply, *, faults: dict[str, float] | None = None,
                 seed: int = 0, slow_seconds: float = 0.5, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.on_reply = on_reply
        self.fault_rates = dict(faults or {})
        unknown = set(self.fault_rates) - set(SMPP_FAULTS)
        if unknown:
            raise ValueError(f"unknown SMPP faults {sorted(unknown)}; expected some of "
                             f"{', '.join(SMPP_FAULTS)}")
        self.slow_seconds = slow_seconds
        self.faults_injected: Counter[str] = Counter()
        self.accepted = 0
        self._random = random.Random(f"smsc-faults:{seed}")
        self._last_drop = -DROP_COOLDOWN

    def _on_submit(self, session, pdu: SubmitSm) -> None:  # type: ignore[no-untyped-def]
        if self.fault_rates and session.kind in (BindTransceiver, BindTransmitter) \
                and self._drop is None:
            self._draw()
        super()._on_submit(session, pdu)

    def _draw(self) -> None:
        roll = self._random.random()
        for name in SMPP_FAULTS:
            rate = self.fault_rates.get(name, 0.0)
            if roll >= rate:
                roll -= rate
                continue
            now = trio.current_time()
            if name in ("drop", "lost_resp"):
                if now - self._last_drop < DROP_COOLDOWN:
                    return
                self._last_drop = now
                self.drop_on_submit("before_accept" if name == "drop" else "before_resp")
            elif name == "throttle":
                self.throttle(1)
            elif name == "error":
                self.throttle(1, CommandStatus.ESME_RSYSERR)
            else:
                self.slow(self.slow_seconds, 1)
            self.faults_injected[name] += 1
            return

    def _record(self, pdu: SubmitSm, message_id: str) -> None:
        self.accepted += 1
        before = len(self.messages)
        super()._record(pdu, message_id)
        if len(self.messages) == before:
            return  # a part of a long message still waiting for the others
        mt = self.messages.pop()
        self.submits.clear()  # kept by the simulator for tests; a long run would hoard them
        self.phones.pop(mt.destination, None)
        self.on_reply(Reply(their=mt.destination, our=mt.source, text=mt.text,
                            at=trio.current_time(), key=f"{mt.source}>{mt.destination}:"
                            f"{mt.text}"))


class SmppPhones:
    """Buyers behind the SMSC simulator; our server binds to it as an ESME."""

    name = "smpp"

    def __init__(self, on_reply: OnReply, *, faults: dict[str, float] | None = None,
                 seed: int = 0, system_id: str = "intercept", password: str = "secret",
                 rate_cap: float | None = None, window: int = 100) -> None:
        self.smsc = FaultySmsc(on_reply, faults=faults, seed=seed, system_id=system_id,
                               password=password, redeliver_after=5.0, max_rate=rate_cap,
                               window=window)
        self.faults_injected = self.smsc.faults_injected
        self.accepted_per_second: list[int] = []

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the SMSC on host:port (0: any free port); started() with the port."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.smsc.run)
            bound = await nursery.start(partial(self.smsc.serve_tcp, port, host=host))
            nursery.start_soon(self._sample)
            task_status.started(bound)

    async def _sample(self) -> None:
        """Submits the SMSC accepted in each second (for the rate under a --rate-cap)."""
        last = self.smsc.accepted
        while True:
            await trio.sleep(1.0)
            self.accepted_per_second.append(self.smsc.accepted - last)
            last = self.smsc.accepted

    async def ready(self) -> None:
        """Return once our server is bound."""
        await self.smsc.bound.wait()

    async def send(self, their: str, our: str, text: str, *, photo: bool = False) -> bool:
        if photo:  # SMPP carries no MMS: the photo travels as a link in the text
            text = f"{text} https://pics.example/{secrets.token_hex(4)}.jpg"
        self.smsc.deliver_nowait(their, our, text)
        return True

    def stats(self) -> dict[str, int]:
        smsc = self.smsc
        busy = sorted(n for n in self.accepted_per_second if n)
        return {"binds": smsc.binds, "submits_accepted": smsc.accepted,
                "accepted_per_s_median": busy[len(busy) // 2] if busy else 0,
                "accepted_per_s_max": busy[-1] if busy else 0,
                "throttled": smsc.throttled_answers,
                "submits_accepted_unanswered": max(0, smsc.accepted - len(smsc.answered)),
                "mo_acknowledged": smsc.mo_acked, "mo_redeliveries": smsc.redeliveries}


class ProviderPhones:
    """Buyers behind the fake Twilio: signed webhooks in, REST calls out."""

    name = "provider"

    def __init__(self, on_reply: OnReply, *, account_sid: str, auth_token: str,
                 faults: dict[str, float] | None = None, seed: int = 0,
                 callbacks: bool = True, hang_seconds: float = 30.0,
                 rate_cap: float | None = None) -> None:
        rates = dict(faults or {})
        unknown = set(rates) - set(PROVIDER_FAULTS)
        if unknown:
            raise ValueError(f"unknown provider faults {sorted(unknown)}; expected some of "
                             f"{', '.join(PROVIDER_FAULTS)}")
        self.fake = FakeTwilio(account_sid, auth_token, faults=Faults(
            rate_429=rates.get("throttle", 0.0), rate_500=rates.get("error", 0.0),
            rate_hang=rates.get("slow", 0.0), rate_drop=rates.get("drop", 0.0), seed=seed,
            retry_after=1, hang_seconds=hang_seconds,
            per_from_interval=1.0 / rate_cap if rate_cap else None),
            callbacks=Callbacks(enabled=callbacks))
        self.on_reply = on_reply
        self.webhook_url = ""
        self.webhook_failures = 0
        self._seen = 0
        self._names = {"429": "throttle", "500": "error", "hang": "slow", "drop": "drop"}

    @property
    def faults_injected(self) -> Counter[str]:  # type: ignore[override]
        return Counter({self._names.get(k, k): v for k, v in self.fake.faults_injected.items()})

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the fake provider on host:port; started() with the port."""
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(self.fake.serve, host, port)
            nursery.start_soon(self._watch)
            task_status.started(bound)

    async def _watch(self) -> None:
        """Report the messages our server created (`FakeTwilio.sent`), as they come."""
        while True:
            sent = self.fake.sent
            while self._seen < len(sent):
                record = sent[self._seen]
                self._seen += 1
                self.on_reply(Reply(their=record.to, our=record.from_, text=record.body,
                                    at=record.at, key=record.outbox_id or record.sid))
            await trio.sleep(0.002)

    async def send(self, their: str, our: str, text: str, *, photo: bool = False) -> bool:
        """Post the signed webhook; retried with the same MessageSid (as a provider would)."""
        sid = ("MM" if photo else "SM") + secrets.token_hex(16)
        media = [("image/jpeg", PHOTO)] if photo else []
        for attempt in range(4):
            try:
                status, _ = await self.fake.send_inbound(self.webhook_url, from_=their, to=our,
                                                         body=text, media=media,
                                                         message_sid=sid)
                if status == 200:
                    return True
            except httpx.HTTPError:
                pass
            self.webhook_failures += 1
            await trio.sleep(0.5 * 2 ** attempt)
        return False

    def stats(self) -> dict[str, int]:
        fake = self.fake
        return {"created": len(fake.sent),
                "duplicate_creations_by_outbox": sum(n - 1 for n in fake.duplicates().values()),
                "webhook_failures": self.webhook_failures,
                "callbacks_posted": fake.callbacks_posted,
                "callback_failures": fake.callback_failures}
