"""Small HTTP helpers of the console: security headers, cookies, forms, redirects."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl

from ..http.routing import HTTPError, Request, Response

Scope = dict[str, Any]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
"""Scripts, styles and images only from this server; nothing inline, no frames, no plugins."""
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
HTML = b"text/html; charset=utf-8"


def cookies(scope: Scope) -> dict[str, str]:
    """The request's cookies by name."""
    found: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        if key.lower() == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, text = part.strip().partition("=")
                if name:
                    found.setdefault(name, text)
    return found


def form(request: Request) -> dict[str, str]:
    """The request's url-encoded form fields (the first of each name)."""
    try:
        pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HTTPError(400, "the form is not valid UTF-8") from None
    found: dict[str, str] = {}
    for name, value in pairs:
        found.setdefault(name, value)
    return found


def is_https(scope: Scope) -> bool:
    """Whether the browser reached us over https (directly or through a proxy that says so)."""
    if scope.get("scheme") == "https":
        return True
    return any(k.lower() == b"x-forwarded-proto" and v.strip().lower() == b"https"
               for k, v in scope.get("headers", ()))


def set_cookie(name: str, value: str, *, secure: bool, max_age: float | None) -> bytes:
    """A Set-Cookie value: HttpOnly, SameSite=Strict, path /, Secure behind https."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max(0, math.floor(max_age))}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode()


def redirect(location: str, *headers: tuple[bytes, bytes]) -> Response:
    return Response(303, b"", HTML, [(b"location", location.encode()), *headers])


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of ours, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
