"""Delivery receipts: the text form and the TLV form, read into one `Receipt`.

The text form is the de-facto format of SMPP 3.4 appendix B::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
    err:E text:...

Keys are read case-insensitively, in any order, and any of them may be missing; ``text:`` runs to
the end. The TLV form is receipted_message_id + message_state (+ network_error_code). When both
are present the TLVs win for the id and the state, and the text fills in the rest.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from .codec import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_INTERMEDIATE_NOTIFICATION,
    ESM_CLASS_TYPE_MASK,
    DataSm,
    DeliverSm,
    Tag,
)
from .encoding import DataCoding, ucs2_decode

ReceiptState = Literal[
    "enroute", "delivered", "expired", "deleted", "undeliverable", "accepted", "unknown",
    "rejected",
]

FINAL_STATES: frozenset[str] = frozenset(
    {"delivered", "expired", "deleted", "undeliverable", "accepted", "unknown", "rejected"})
"""States after which the SMSC sends nothing more about the message (only enroute is not)."""

_BY_MESSAGE_STATE: dict[int, ReceiptState] = {
    1: "enroute", 2: "delivered", 3: "expired", 4: "deleted", 5: "undeliverable",
    6: "accepted", 7: "unknown", 8: "rejected",
}
# Matched on the first five letters of stat:, so DELIVRD/DELIVERED, UNDELIV/UNDELIVERABLE... agree.
_BY_STAT: dict[str, ReceiptState] = {
    "ENROU": "enroute", "DELIV": "delivered", "EXPIR": "expired", "DELET": "deleted",
    "UNDEL": "undeliverable", "ACCEP": "accepted", "UNKNO": "unknown", "REJEC": "rejected",
    "FAILE": "undeliverable",
}


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """What a delivery receipt says about one submitted message."""

    message_id: str
    state: ReceiptState
    stat: str = ""
    """The stat: word as written (e.g. "DELIVRD"), or "" when only the TLVs said."""
    error: str | None = None
    """The err: field as written (often "000")."""
    network_error_code: bytes | None = None
    """The raw network_error_code TLV: network type, then a two-octet error code."""
    submitted: int | None = None
    delivered: int | None = None
    submit_date: str | None = None
    done_date: str | None = None
    text: str | None = None

    @property
    def final(self) -> bool:
        """Whether the message has reached a final state."""
        return self.state in FINAL_STATES


def state_from_stat(stat: str) -> ReceiptState:
    """Normalise a stat: word (DELIVRD, UNDELIV, EXPIRED...); an unknown word is "unknown"."""
    return _BY_STAT.get(stat[:5].upper(), "unknown")


def state_from_message_state(value: int) -> ReceiptState:
    """Normalise a message_state TLV value; an unknown value is "unknown"."""
    return _BY_MESSAGE_STATE.get(value, "unknown")


_KEYS = re.compile(
    r"(?:^|(?<=\s))(id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err|text)\s*:", re.IGNORECASE)


def _fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    matches = list(_KEYS.finditer(text))
    for i, match in enumerate(matches):
        key = match.group(1).lower().replace("_", " ")
        if key == "text":
            found.setdefault(key, text[match.end():])
            break
        stop = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        found.setdefault(key, text[match.end():stop].strip())
    return found


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def parse_receipt_text(text: str) -> Receipt | None:
    """Read the text form of a receipt; None when it has no ``id:``."""
    fields = _fields(text)
    message_id = fields.get("id", "").split(maxsplit=1)
    if not message_id:
        return None
    stat = fields.get("stat", "").split(maxsplit=1)
    stat_word = stat[0] if stat else ""
    err = fields.get("err", "").split(maxsplit=1)
    return Receipt(
        message_id=message_id[0],
        state=state_from_stat(stat_word) if stat_word else "unknown",
        stat=stat_word,
        error=err[0] if err else None,
        submitted=_int_or_none(fields.get("sub")),
        delivered=_int_or_none(fields.get("dlvrd")),
        submit_date=fields.get("submit date") or None,
        done_date=fields.get("done date") or None,
        text=fields.get("text"),
    )


def is_receipt(pdu: DeliverSm | DataSm) -> bool:
    """Whether a deliver_sm/data_sm is a delivery receipt or notification, not a message."""
    kind = pdu.esm_class & ESM_CLASS_TYPE_MASK
    return kind in (ESM_CLASS_DELIVERY_RECEIPT, ESM_CLASS_INTERMEDIATE_NOTIFICATION)


def receipt_from_pdu(pdu: DeliverSm | DataSm) -> Receipt | None:
    """The receipt carried by a deliver_sm/data_sm (TLVs, text, or both), or None."""
    data = pdu.message_payload
    if data is None:
        data = getattr(pdu, "short_message", b"")
    # Receipt text is ASCII; Latin-1 never fails and keeps the ASCII letters.
    ucs2 = pdu.data_coding == DataCoding.UCS2
    body = ucs2_decode(data) if ucs2 else data.decode("latin-1")
    parsed = parse_receipt_text(body) if body else None
    network_error = None
    for tlv in pdu.tlvs:
        if tlv.tag == Tag.NETWORK_ERROR_CODE:
            network_error = tlv.value
    message_id = pdu.receipted_message_id or (parsed.message_id if parsed else None)
    if not message_id:
        return None
    if pdu.message_state is not None:
        state = state_from_message_state(pdu.message_state)
    elif parsed is not None:
        state = parsed.state
    else:
        state = "unknown"
    if parsed is None:
        return Receipt(message_id=message_id, state=state, network_error_code=network_error)
    return msgspec.structs.replace(parsed, message_id=message_id, state=state,
                                   network_error_code=network_error)
