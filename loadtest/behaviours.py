"""Simulated buyers: how each kind texts, and how the kinds are mixed.

A behaviour is an async function of a `Buyer`; it returns an outcome word for the report. Every
message goes through `Buyer.text()`, which tags it and records it in the ledger before handing
it to the network. Buyers stop texting when the run's duration is over.

- `human`: texts, waits for the answer, thinks (`--think`), again, until the run ends;
- `fragment`: 2-4 short fragments 0.05-0.5 s apart, then waits for all the answers (delays are
  off in the generated config, so the server answers each fragment: no merging);
- `photo`: a text, then a photo (MMS via the provider; over SMPP a link in the text), then
  human pace;
- `abandon`: 1-3 exchanges at human pace, then never texts again;
- `stop`: 1-2 exchanges, then STOP (exactly one confirmation expected), then one more text
  (nothing expected: any answer is a violation);
- `rapid`: bursts of 3-6 texts with no pause, waits for all the answers, thinks;
- `two_numbers`: human pace, alternating between two of our numbers (each answer must come
  from the number texted).

Every message except the one after STOP expects exactly one answer.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from loadtest.ledger import Kind, tag

if TYPE_CHECKING:
    from loadtest.state import LoadRun

LINES = ("hey u available tonight?", "how much for an hour", "where r u located",
         "can u do 9pm", "ok sounds good", "r u real?", "whats the address",
         "im on my way", "can i come now", "is it still 150")
FRAGMENTS = ("hey", "u there", "u avail", "tonite?", "how much", "for an hour", "ok so",
             "what time")
AREA_CODES = (212, 312, 415, 202, 303, 404, 503, 617, 702, 213, 305, 512, 602, 713, 808, 917,
              972, 314, 612, 615)
MAX_BUYERS = len(AREA_CODES) * 10_000


def buyer_number(index: int) -> str:
    """A valid, distinct US number for buyer `index` (555 exchange: fiction numbers)."""
    if not 0 <= index < MAX_BUYERS:
        raise ValueError(f"buyer {index}: at most {MAX_BUYERS:,} buyers are supported")
    return f"+1{AREA_CODES[index // 10_000]}555{index % 10_000:04d}"


def buyer_index(number: str) -> int | None:
    """The buyer index of a number `buyer_number` gave; None for any other number."""
    if len(number) != 12 or not number.startswith("+1") or number[5:8] != "555":
        return None
    try:
        return AREA_CODES.index(int(number[2:5])) * 10_000 + int(number[8:])
    except ValueError:
        return None


class Buyer:
    """One simulated phone and the conversation(s) it holds with our numbers."""

    def __init__(self, run: LoadRun, index: int, behaviour: str, ours: list[str]) -> None:
        self.run = run
        self.id = index
        self.number = buyer_number(index)
        self.behaviour = behaviour
        self.ours = ours
        self.rng = random.Random(f"{run.options.seed}:{index}")
        self.n = 0

    @property
    def active(self) -> bool:
        """Whether the run still wants new messages."""
        return trio.current_time() < self.run.end_at

    def line(self) -> str:
        return self.rng.choice(LINES)

    async def text(self, body: str, *, to: str | None = None, kind: Kind = "reply",
                   photo: bool = False) -> tuple[int, int]:
        """Send one tagged message; its ledger key."""
        self.n += 1
        key = (self.id, self.n)
        our = to or self.ours[0]
        ledger = self.run.ledger
        ledger.expect(self.id, self.n, their=self.number, our=our, kind=kind,
                      behaviour=self.behaviour, now=trio.current_time())
        if not await self.run.phones.send(self.number, our, f"{body} {tag(*key)}", photo=photo):
            ledger.send_failed(*key)
        return key

    async def answers(self, keys: list[tuple[int, int]]) -> bool:
        """Wait for the answers to `keys` (at most `--reply-timeout`); True if all came."""
        return await self.run.ledger.wait(keys, self.run.options.reply_timeout)

    async def exchange(self, body: str, **options: object) -> bool:
        """Text and wait for the answer."""
        return await self.answers([await self.text(body, **options)])  # type: ignore[arg-type]

    async def think(self) -> None:
        """A human pause, cut short when the run ends."""
        low, high = self.run.options.think
        pause = min(self.rng.uniform(low, high), self.run.end_at - trio.current_time())
        if pause > 0:
            await trio.sleep(pause)


async def human(buyer: Buyer) -> str:
    while buyer.active:
        await buyer.exchange(buyer.line())
        await buyer.think()
    return "chatted until the end"


async def fragment(buyer: Buyer) -> str:
    while buyer.active:
        keys = []
        for i in range(buyer.rng.randint(2, 4)):
            if i:
                await trio.sleep(buyer.rng.uniform(0.05, 0.5))
            keys.append(await buyer.text(buyer.rng.choice(FRAGMENTS)))
        await buyer.answers(keys)
        await buyer.think()
    return "chatted until the end"


async def photo(buyer: Buyer) -> str:
    if not buyer.active:
        return "never started"
    await buyer.exchange(buyer.line())
    await buyer.think()
    if not buyer.active:
        return "ended before the photo"
    await buyer.exchange("heres a pic of me", photo=True)
    await buyer.think()
    await human(buyer)
    return "sent a photo"


async def abandon(buyer: Buyer) -> str:
    for _ in range(buyer.rng.randint(1, 3)):
        if not buyer.active:
            return "ended before abandoning"
        await buyer.exchange(buyer.line())
        await buyer.think()
    return "abandoned"


async def stop(buyer: Buyer) -> str:
    for _ in range(buyer.rng.randint(1, 2)):
        if not buyer.active:
            return "ended before STOP"
        if not await buyer.exchange(buyer.line()):
            # STOP now would have the missing answer refused: it would look lost.
            return "no answer, did not STOP"
        await buyer.think()
    if not buyer.active:
        return "ended before STOP"
    if not await buyer.exchange("stop", kind="confirmation"):
        return "STOP unconfirmed"
    await buyer.think()
    if buyer.active:
        await buyer.text("hello? u there", kind="none")
    return "opted out"


async def rapid(buyer: Buyer) -> str:
    while buyer.active:
        keys = [await buyer.text(buyer.line()) for _ in range(buyer.rng.randint(3, 6))]
        await buyer.answers(keys)
        await buyer.think()
    return "chatted until the end"


async def two_numbers(buyer: Buyer) -> str:
    turn = 0
    while buyer.active:
        await buyer.exchange(buyer.line(), to=buyer.ours[turn % 2])
        turn += 1
        await buyer.think()
    return "chatted until the end"


BEHAVIOURS: dict[str, Callable[[Buyer], Awaitable[str]]] = {
    "human": human, "fragment": fragment, "photo": photo, "abandon": abandon, "stop": stop,
    "rapid": rapid, "two_numbers": two_numbers}


def assign(mix: dict[str, float], count: int) -> list[str]:
    """Behaviour of each of `count` buyers, in the proportions of `mix` (deterministic and
    evenly interleaved: buyer i takes the slot of a low-discrepancy sequence)."""
    names = [name for name, weight in mix.items() if weight > 0]
    if not names:
        raise ValueError("--mix gives no behaviour a weight above 0")
    total = sum(mix[name] for name in names)
    bounds = []
    running = 0.0
    for name in names:
        running += mix[name] / total
        bounds.append(running)
    golden = 0.6180339887498949
    out = []
    for i in range(count):
        x = (i * golden) % 1.0
        out.append(next((n for n, b in zip(names, bounds, strict=True) if x < b), names[-1]))
    return out
