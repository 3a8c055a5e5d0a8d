"""A fake Twilio Lookup v2 API (caller name and line type), with faults, for tests and demos.

    python -m loadtest.fake_lookup --listen 127.0.0.1:8098 --account-sid AC... --auth-token t

It is an ASGI app (`FakeLookup`), served by hypercorn's trio worker from the command line; in a
test, hand it to ``httpx.ASGITransport(app=fake)`` and no socket is opened, so MockClock time
drives the `slow` fault. It answers

    GET /v2/PhoneNumbers/{number}?Fields=caller_name,line_type_intelligence

with Basic auth (the account SID and auth token), like Twilio: 401 without them, 404 for a
number that does not parse. Faults are taken from `script` one per request ("slow", "500",
"429", "ok"), then from seeded probabilities. Caller names come from `names` (number -> name),
else a made-up one derived from the number; a number in `unknown` has no caller name.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import logging
import random
import sys
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import trio

from intercept.http.app import answer_lifespan

log = logging.getLogger("loadtest.fake_lookup")

FAULTS = ("slow", "500", "429", "ok")
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_FIRST = ("JOHN", "MIKE", "DAVID", "CHRIS", "JAMES", "ROBERT", "DANIEL", "KEVIN")
_LAST = ("SMITH", "JOHNSON", "BROWN", "MILLER", "DAVIS", "WILSON", "MOORE", "TAYLOR")
_CARRIERS = (("mobile", "T-Mobile USA, Inc."), ("mobile", "Verizon Wireless"),
             ("nonFixedVoip", "Google (Grand Central) - SVR"), ("landline", "Comcast"))


@dataclass
class Faults:
    script: deque[str] = field(default_factory=deque)
    """Faults for the next requests, in order ("slow", "500", "429" or "ok")."""
    rate_slow: float = 0.0
    rate_500: float = 0.0
    rate_429: float = 0.0
    slow_seconds: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [f for f in self.script if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; use one of {', '.join(FAULTS)}")
        self._random = random.Random(self.seed)

    def next(self) -> str:
        if self.script:
            return self.script.popleft()
        roll = self._random.random()
        for name, rate in (("slow", self.rate_slow), ("500", self.rate_500),
                           ("429", self.rate_429)):
            if roll < rate:
                return name
            roll -= rate
        return "ok"


class FakeLookup:
    """The ASGI app. `requests` lists the numbers asked for (every authorised request)."""

    def __init__(self, account_sid: str, auth_token: str, *, faults: Faults | None = None,
                 names: dict[str, str] | None = None, unknown: set[str] | None = None):
        self.account_sid, self.auth_token = account_sid, auth_token
        self.faults = faults or Faults()
        self.names = dict(names or {})
        self.unknown = set(unknown or ())
        self.requests: list[str] = []
        self.faults_injected: list[str] = []

    def answer(self, number: str) -> dict[str, Any]:
        """The Lookup v2 body for `number` (deterministic)."""
        digits = int("".join(c for c in number if c.isdigit()) or "0")
        name = self.names.get(number)
        if name is None and number not in self.unknown:
            name = f"{_FIRST[digits % len(_FIRST)]} {_LAST[digits // 7 % len(_LAST)]}"
        line_type, carrier = _CARRIERS[digits // 3 % len(_CARRIERS)]
        return {
            "calling_country_code": "1", "country_code": "US", "phone_number": number,
            "national_format": number, "valid": True, "validation_errors": [],
            "caller_name": {"caller_name": name, "caller_type": "CONSUMER" if name else None,
                            "error_code": None if name else 404},
            "line_type_intelligence": {"carrier_name": carrier, "type": line_type,
                                       "mobile_country_code": "310",
                                       "mobile_network_code": "160", "error_code": None},
            "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{number}",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):  # read the body: keep-alive needs it
            pass
        path: str = scope["path"]
        if scope["method"] != "GET" or not path.startswith("/v2/PhoneNumbers/"):
            await _respond(send, 404, {"code": 20404, "message": "not found", "status": 404})
            return
        if not self._authorised(scope):
            await _respond(send, 401, {"code": 20003, "message": "Authenticate",
                                       "status": 401})
            return
        number = unquote(path[len("/v2/PhoneNumbers/"):])
        fields = parse_qs(scope.get("query_string", b"").decode()).get("Fields", [""])[0]
        self.requests.append(number)
        fault = self.faults.next()
        if fault != "ok":
            self.faults_injected.append(fault)
        if fault == "slow":
            await trio.sleep(self.faults.slow_seconds)
        elif fault == "500":
            await _respond(send, 500, {"code": 20500, "message": "Internal Server Error",
                                       "status": 500})
            return
        elif fault == "429":
            await _respond(send, 429, {"code": 20429, "message": "Too Many Requests",
                                       "status": 429}, [(b"retry-after", b"1")])
            return
        if not number.startswith("+") or not number[1:].isdigit() or len(number) < 8:
            await _respond(send, 404, {"code": 20404, "message": "The requested resource "
                                       f"/PhoneNumbers/{number} was not found", "status": 404})
            return
        body = self.answer(number)
        wanted = set(fields.split(",")) if fields else set()
        for key in ("caller_name", "line_type_intelligence"):
            if key not in wanted:
                body[key] = None
        await _respond(send, 200, body)

    def _authorised(self, scope: Scope) -> bool:
        header = dict(scope.get("headers", [])).get(b"authorization", b"")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode())
        return hmac.compare_digest(header, b"Basic " + expected)


async def _respond(send: Send, status: int, body: dict[str, Any],
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.fake_lookup",
        description="A fake Twilio Lookup v2 API with faults (slow, 500, 429).")
    parser.add_argument("--listen", default="127.0.0.1:8098")
    parser.add_argument("--account-sid", default="AC" + "0" * 32)
    parser.add_argument("--auth-token", default="fake-lookup-token")
    parser.add_argument("--faults", default="", help="a script, e.g. slow,500,429,ok")
    parser.add_argument("--rate-slow", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        faults = Faults(script=deque(f for f in args.faults.split(",") if f),
                        rate_slow=args.rate_slow, rate_500=args.rate_500,
                        rate_429=args.rate_429, slow_seconds=args.slow_seconds, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    app = FakeLookup(args.account_sid, args.auth_token, faults=faults)

    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [args.listen]
    config.accesslog = None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    print(f"fake Lookup v2 on http://{args.listen} (account {args.account_sid})",
          file=sys.stderr)
    trio.run(serve, app, config)  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    main()
