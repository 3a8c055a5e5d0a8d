"""Console sessions: an API token traded at /login for a signed cookie, and CSRF tokens.

The cookie holds a session id, the principal, an expiry and the session's CSRF token, signed
with HMAC-SHA256 under a key made when the server starts (so a restart logs everyone out). The
token itself never leaves the server: it stays in `Sessions` so that a revoked token ends its
sessions at the next re-check. Logging out forgets the session here, so a copied cookie is
worthless afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import msgspec

from ..http.auth import Principal, Role

COOKIE = "intercept_session"
LOGIN_CSRF_COOKIE = "intercept_login_csrf"
"""Before a session exists, the login form's CSRF token is a cookie compared with the form."""
LIFETIME = 8 * 3600.0
"""Seconds a session lasts from login."""
RECHECK = 60.0
"""Seconds between two checks that a session's token is still valid."""


class _Payload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sid: str
    name: str
    role: str
    expires: float
    csrf: str


@dataclass(slots=True)
class Session:
    """A logged-in person. `token` stays on the server; `csrf` goes into every form."""

    sid: str
    principal: Principal
    expires: float
    csrf: str
    token: str
    checked_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Live sessions and their cookies. `now` is wall time in seconds."""

    def __init__(self, *, key: bytes | None = None, lifetime: float = LIFETIME):
        self._key = key or secrets.token_bytes(32)
        self.lifetime = lifetime
        self._live: dict[str, Session] = {}
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(_Payload).decode

    def __len__(self) -> int:
        return len(self._live)

    def _sign(self, data: bytes) -> str:
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())

    def create(self, principal: Principal, token: str, now: float) -> tuple[Session, str]:
        """A new session and its cookie value."""
        self._expire(now)
        session = Session(sid=secrets.token_urlsafe(18), principal=principal,
                          expires=now + self.lifetime, csrf=secrets.token_urlsafe(24),
                          token=token, checked_at=now)
        self._live[session.sid] = session
        data = self._encode(_Payload(session.sid, principal.name, principal.role.name,
                                     session.expires, session.csrf))
        return session, f"{_b64(data)}.{self._sign(data)}"

    def find(self, cookie: str | None, now: float) -> Session | None:
        """The live session of a cookie value; None if it is missing, forged, old or ended."""
        if not cookie or "." not in cookie:
            return None
        encoded, _, signature = cookie.partition(".")
        try:
            data = _unb64(encoded)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(data), signature):
            return None
        try:
            payload = self._decode(data)
        except msgspec.DecodeError:
            return None
        session = self._live.get(payload.sid)
        if session is None or payload.expires <= now or session.expires <= now:
            if session is not None:
                del self._live[session.sid]
            return None
        return session

    def find_live(self, session: Session, now: float) -> Session | None:
        """`session` if it has not ended or expired since it was found."""
        if self._live.get(session.sid) is not session or session.expires <= now:
            return None
        return session

    def end(self, session: Session) -> None:
        self._live.pop(session.sid, None)

    def _expire(self, now: float) -> None:
        for sid in [sid for sid, s in self._live.items() if s.expires <= now]:
            del self._live[sid]


def csrf_matches(expected: str | None, presented: str | None) -> bool:
    """True if a CSRF token was presented and equals the expected one (constant time)."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def may_see_numbers(role: Role) -> bool:
    """Whether a role sees full phone numbers (as in the API: advocate and admin)."""
    return role >= Role.advocate
