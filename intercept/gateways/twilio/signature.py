"""Twilio's request signature: ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, data)).

The signed data is the full URL Twilio requested (scheme, host, path and query string) followed,
for a form-encoded POST, by every parameter name and value, sorted by name (and, for a repeated
name, by value). Twilio signs inconsistently with respect to a default port (":443" present or
not), so a signature is accepted when it matches the URL either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

Params = Iterable[tuple[str, str]]


def signed_data(url: str, params: Params) -> str:
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    parts = [url]
    for name in sorted(by_name):
        for value in sorted(by_name[name]):
            parts.append(name + value)
    return "".join(parts)


def compute_signature(auth_token: str, url: str, params: Params = ()) -> str:
    """The ``X-Twilio-Signature`` value Twilio would send for this request."""
    mac = hmac.new(auth_token.encode("utf-8"), signed_data(url, params).encode("utf-8"),
                   hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def url_variants(url: str) -> tuple[str, str]:
    """`url` with its default port written out, and without any port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{port}"))
    without_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
    return with_port, without_port


def valid_signature(auth_token: str, url: str, params: Params, signature: str | None) -> bool:
    """Whether `signature` signs this request; constant-time comparison, any port spelling."""
    if not signature:
        return False
    params = list(params)
    given = signature.strip().encode("ascii", "replace")
    ok = False
    for candidate in url_variants(url):
        expected = compute_signature(auth_token, candidate, params).encode("ascii")
        ok |= hmac.compare_digest(expected, given)
    return ok
