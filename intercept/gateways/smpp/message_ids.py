"""One form for the SMSC's message ids, so that a delivery receipt finds the submit it answers.

SMSCs disagree on how a message id is written: the submit_sm_resp may say ``0A1B2C`` and the
receipt ``a1b2c``, or the response give hex and the receipt the same number in decimal (the id
field of a receipt's text is often decimal). Both sides are reduced to a key before they are
recorded or matched:

- ``same`` (the default): the same form on both sides, compared without case and without
  leading zeros;
- ``submit-hex-receipt-decimal`` / ``submit-decimal-receipt-hex``: the two sides are numbers
  written in different bases; both become the decimal number.

An id that is not a number in the expected base falls back to the ``same`` key.
"""

from __future__ import annotations

from typing import Literal

IdForms = Literal["same", "submit-hex-receipt-decimal", "submit-decimal-receipt-hex"]
_MAX_DIGITS = 64
"""Ids longer than this are not read as numbers (no huge-int work for a hostile id)."""


def _plain(message_id: str) -> str:
    text = message_id.strip().lower()
    return text.lstrip("0") or ("0" if text else "")


def _number(message_id: str, base: int) -> str | None:
    text = message_id.strip()
    if not text or len(text) > _MAX_DIGITS:
        return None
    try:
        return str(int(text, base))
    except ValueError:
        return None


def submit_key(message_id: str, forms: IdForms = "same") -> str:
    """The key of an id from a submit_sm_resp."""
    if forms == "submit-hex-receipt-decimal":
        return _number(message_id, 16) or _plain(message_id)
    if forms == "submit-decimal-receipt-hex":
        return _number(message_id, 10) or _plain(message_id)
    return _plain(message_id)


def receipt_key(message_id: str, forms: IdForms = "same") -> str:
    """The key of an id from a delivery receipt."""
    if forms == "submit-hex-receipt-decimal":
        return _number(message_id, 10) or _plain(message_id)
    if forms == "submit-decimal-receipt-hex":
        return _number(message_id, 16) or _plain(message_id)
    return _plain(message_id)
