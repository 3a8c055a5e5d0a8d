"""Twilio's request signature: ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, data)).

The signed data is the full URL Twilio requested (scheme, host, path and query string) followed,
for a form-encoded POST, by every parameter name and value, sorted by name (and, for a repeated
name, by value). Twilio signs inconsistently with respect to a default port (":443" present or
not), so a signature is accepted when it matches the URL either way.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

Params = Iterable[tuple[str, str]]


def _params_data(params: Params) -> str:
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        values = by_name.get(name)
        if values is None:
            by_name[name] = {value}
        else:
            values.add(value)
    return "".join(name + value for name in sorted(by_name) for value in sorted(by_name[name]))


def signed_data(url: str, params: Params) -> str:
    """What Twilio signs: the URL, then each name and value, sorted."""
    return url + _params_data(params)


def _sign(key: bytes, data: str) -> bytes:
    return base64.b64encode(hmac.new(key, data.encode("utf-8"), hashlib.sha1).digest())


def compute_signature(auth_token: str, url: str, params: Params = ()) -> str:
    """The ``X-Twilio-Signature`` value Twilio would send for this request."""
    return _sign(auth_token.encode("utf-8"), signed_data(url, params)).decode("ascii")


@functools.lru_cache(maxsize=1024)
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
    """Whether `signature` signs this request: the URL as given, else with or without its
    default port. Each comparison takes constant time."""
    if not signature:
        return False
    given = signature.strip().encode("ascii", "replace")
    key = auth_token.encode("utf-8")
    tail = _params_data(params)
    if hmac.compare_digest(_sign(key, url + tail), given):
        return True
    return any(hmac.compare_digest(_sign(key, variant + tail), given)
               for variant in url_variants(url) if variant != url)
