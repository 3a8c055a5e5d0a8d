"""Inbound (MO) helpers: stable gateway ids for messages that carry none, and addresses.

SMPP 3.4 gives an MO message no id, yet the store recognises a redelivery by the gateway's id
(the SMSC redelivers a deliver_sm whose deliver_sm_resp it did not get). `MoIds` derives the id
from the content: a hash of source, destination, data_coding, the concatenation reference and
count, and the text, plus the `window`-long time bucket in which that content first arrived.

- A copy arriving within `window` of the first one gets the same id (remembered in memory, so a
  bucket boundary in between does not matter) and the store drops it as a duplicate.
- The same content arriving `window` or more after the first is a new message (new bucket).
- Edges, both documented in docs/smpp.md: a person who sends exactly the same text to the same
  number twice within `window` (and, for a long message, with the same concatenation
  reference) has the second copy treated as a redelivery; and after a restart, which empties
  the memory, a redelivery of a message committed before it is recognised only when it falls in
  the same time bucket as the original.
"""

from __future__ import annotations

import hashlib

from ...foundation.caching import BoundedDict


def mo_key(source: str, destination: str, data_coding: int, text: str,
           ref: int | None = None, total: int = 1) -> str:
    """The content hash of an MO message (24 hex digits)."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{source}\0{destination}\0{data_coding}\0{ref}\0{total}\0".encode(
        "utf-8", "surrogatepass"))
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class MoIds:
    """Gives each MO message its gateway id; see the module docstring for the rule."""

    def __init__(self, window: float = 600.0, *, max_entries: int = 200_000):
        if window <= 0:
            raise ValueError(f"window is {window}; it must be positive (seconds).")
        self.window = window
        self.max_entries = max_entries
        self._seen: BoundedDict[str, tuple[str, float]] = BoundedDict(max_entries)

    def __len__(self) -> int:
        return len(self._seen)

    def id_for(self, key: str, *, wall: float, now: float) -> str:
        """The gateway id for content `key` arriving at `now` (monotonic) / `wall` (epoch)."""
        seen = self._seen
        entry = seen.get(key)
        if entry is not None and now - entry[1] < self.window:
            return entry[0]
        gateway_id = f"mo-{key}-{int(wall // self.window)}"
        seen[key] = (gateway_id, now)  # the newest; past max_entries the oldest go
        horizon = now - self.window
        while seen:
            first = next(iter(seen.values()))
            if first[1] > horizon:
                break
            seen.popitem(last=False)
        return gateway_id


def to_address(number: str) -> str:
    """An E.164 number as an SMPP address for TON 1 (international): digits, no '+'."""
    return number[1:] if number.startswith("+") else number


def from_address(address: str, ton: int) -> str:
    """An SMPP address as the server writes numbers: '+' and digits when it is international.

    TON 1 (international) and TON 0 (unknown, which many SMSCs use for international numbers
    without the '+') with digits only become ``+digits``; anything else (national, alphanumeric
    sender ids) is kept as it came.
    """
    if ton in (0, 1) and address.isdigit():
        return "+" + address
    return address
