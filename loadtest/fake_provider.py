"""A fake Twilio SMS provider: the 2010-04-01 Messages API, status callbacks and inbound webhooks.

    python -m loadtest.fake_provider --listen 127.0.0.1:8099 --account-sid AC... --auth-token t

It speaks HTTP/1.1 itself (h11 on trio sockets, keep-alive, one task per connection), so faults
happen at the socket level: a 429 or 500 that creates nothing, a request that is never answered
(nothing created), or a connection closed after the message was created (no response at all).
Faults come from a script consumed one per POST, then from seeded probabilities (`Faults`).

Accepted messages move queued -> sent -> delivered (or undelivered, error 30003) and, when the
request carried a StatusCallback, each step is POSTed there, signed with X-Twilio-Signature;
`Callbacks` can duplicate them or send them in reverse order. `send_inbound` posts Twilio's
signed webhook for a message from a phone; `record_missed_inbound` only stores it, so that a
catch-up listing finds it.

In a test::

    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, faults=Faults(script=deque(["429", "drop"])))
    await nursery.start(fake.serve)                 # fake.base_url replaces https://api.twilio.com
    await fake.send_inbound(webhook_url, from_="+12065550199", to="+12065550100", body="hi")
    fake.sent[0].outbox_id, fake.creations_by_outbox, fake.faults_injected
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import logging
import math
import mimetypes
import random
import re
import secrets
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

import h11
import httpx
import trio

from intercept.gateways.twilio.signature import compute_signature

log = logging.getLogger("loadtest.fake_provider")

API_VERSION = "2010-04-01"
FAULT_NAMES = ("429", "500", "hang", "drop", "ok")
MAX_BODY = 1 << 20
Params = list[tuple[str, str]]

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_MESSAGE = re.compile(r"Messages/(?P<sid>[^/]+)\.json")
_MEDIA_LIST = re.compile(r"Messages/(?P<sid>[^/]+)/Media\.json")
_MEDIA = re.compile(r"Messages/(?P<sid>[^/]+)/Media/(?P<media>[^/]+?)(?P<json>\.json)?")
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNO"
            "PQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXT = set("^{}\\[~]|€\f")
_REASONS = {200: b"OK", 201: b"Created", 400: b"Bad Request", 401: b"Unauthorized",
            404: b"Not Found", 405: b"Method Not Allowed", 413: b"Payload Too Large",
            429: b"Too Many Requests", 500: b"Internal Server Error"}


@dataclass
class Faults:
    """What the POST Messages.json endpoint does wrong: `script` first, then the probabilities.

    "429"/"500": an error answer, nothing created. "hang": the request is read, nothing created,
    no answer until the client gives up (or `hang_seconds`). "drop": the message is created but
    the connection is closed without a response. `per_from_interval`: answer 429 when a From
    number sends again sooner than this many seconds after its last accepted message.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    rate_drop: float = 0.0
    seed: int = 0
    script: deque[str] = field(default_factory=deque)
    retry_after: int | None = None
    hang_seconds: float = 60.0
    per_from_interval: float | None = None
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(f"faults:{self.seed}")
        self.script = deque(self.script)
        _check_names(self.script)

    def add(self, *names: str) -> None:
        """Append fault names to the script."""
        _check_names(names)
        self.script.extend(names)

    def next(self) -> str:
        """The fault for the next POST: the script's head, else a seeded draw."""
        if self.script:
            return self.script.popleft()
        roll = self._random.random()
        for name, rate in (("429", self.rate_429), ("500", self.rate_500),
                           ("hang", self.rate_hang), ("drop", self.rate_drop)):
            if roll < rate:
                return name
            roll -= rate
        return "ok"


def _check_names(names: Iterable[str]) -> None:
    unknown = [name for name in names if name not in FAULT_NAMES]
    if unknown:
        raise ValueError(f"unknown faults {unknown}; expected some of {FAULT_NAMES}")


@dataclass
class Callbacks:
    """Status callbacks: to whom delivery fails, duplicates, reversed order, pacing."""

    enabled: bool = True
    undelivered: set[str] = field(default_factory=set)
    rate_duplicate: float = 0.0
    rate_reverse: float = 0.0
    delay: float = 0.0
    timeout: float = 10.0
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(f"callbacks:{self.seed}")

    def chance(self, rate: float) -> bool:
        """A seeded draw that comes out true with probability `rate`."""
        return rate > 0 and self._random.random() < rate


@dataclass
class Media:
    """One media item of a message."""

    sid: str
    parent_sid: str
    account_sid: str
    content_type: str
    data: bytes
    created: float
    url: str | None = None

    def resource(self) -> dict[str, Any]:
        """Twilio's JSON for the media resource."""
        uri = f"{_messages_path(self.account_sid)}/{self.parent_sid}/Media/{self.sid}.json"
        return {"sid": self.sid, "parent_sid": self.parent_sid, "account_sid": self.account_sid,
                "content_type": self.content_type, "date_created": _rfc2822(self.created),
                "date_updated": _rfc2822(self.created), "uri": uri}


@dataclass
class Message:
    """A message resource, outbound (accepted by the API) or inbound (from a phone)."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    direction: str
    status: str
    created: float
    seq: int
    media: list[Media] = field(default_factory=list)
    updated: float = 0.0
    sent: float | None = None
    error_code: int | None = None
    error_message: str | None = None
    status_callback: str | None = None

    def resource(self) -> dict[str, Any]:
        """Twilio's JSON for the message resource."""
        uri = f"{_messages_path(self.account_sid)}/{self.sid}"
        return {
            "sid": self.sid, "account_sid": self.account_sid, "api_version": API_VERSION,
            "to": self.to, "from": self.from_, "body": self.body, "status": self.status,
            "direction": self.direction, "date_created": _rfc2822(self.created),
            "date_updated": _rfc2822(self.updated or self.created),
            "date_sent": _rfc2822(self.sent) if self.sent is not None else None,
            "num_media": str(len(self.media)), "num_segments": str(segments(self.body)),
            "error_code": self.error_code, "error_message": self.error_message,
            "messaging_service_sid": None, "price": None, "price_unit": "USD",
            "uri": f"{uri}.json", "subresource_uris": {"media": f"{uri}/Media.json"},
        }


@dataclass
class SentRecord:
    """One accepted POST Messages.json, as the tests look at it."""

    sid: str
    to: str
    from_: str
    body: str
    media_urls: list[str]
    status_callback: str | None
    outbox_id: str | None
    at: float
    wall: float


@dataclass
class _Request:
    method: str
    path: str
    query: Params
    headers: dict[str, str]
    body: bytes


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    action: str | None = None  # "hang" or "drop": no response at all
    created: Message | None = None  # its delivery starts once the response is out


def segments(text: str) -> int:
    """How many SMS parts `text` takes (GSM-7 160/153, else UCS-2 70/67)."""
    if all(char in _GSM7 or char in _GSM7_EXT for char in text):
        units, single, multi = len(text) + sum(char in _GSM7_EXT for char in text), 160, 153
    else:
        units, single, multi = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _rfc2822(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC))


def _messages_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages"


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _json(status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers=list(headers))


def _error(status: int, code: int, message: str,
           headers: Sequence[tuple[str, str]] = ()) -> _Response:
    return _json(status, {"code": code, "message": message, "status": status,
                          "more_info": f"https://www.twilio.com/docs/errors/{code}"}, headers)


def _country(number: str) -> str:
    for prefix, country in (("+1", "US"), ("+44", "GB"), ("+33", "FR"), ("+49", "DE")):
        if number.startswith(prefix):
            return country
    return ""


def _date_bound(value: str) -> date | datetime:
    """A DateSent filter value: YYYY-MM-DD, or an ISO 8601 datetime (UTC when unzoned)."""
    if len(value) == 10:
        return date.fromisoformat(value)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class FakeTwilio:
    """A fake Twilio account serving the Messages API on one port; see the module docstring."""

    def __init__(self, account_sid: str, auth_token: str, *, faults: Faults | None = None,
                 callbacks: Callbacks | None = None, opted_out: Iterable[str] = (),
                 media_auth: bool = True, public_url: str | None = None,
                 keepalive_timeout: float = 75.0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.faults = faults or Faults()
        self.callbacks = callbacks or Callbacks()
        self.opted_out: set[str] = set(opted_out)
        self.media_auth = media_auth
        self.public_url = public_url
        self.keepalive_timeout = keepalive_timeout
        self.messages: dict[str, Message] = {}
        self.media: dict[str, Media] = {}
        self.sent: list[SentRecord] = []
        self.creations_by_outbox: Counter[str] = Counter()
        self.accepted_at: defaultdict[str, list[float]] = defaultdict(list)
        self.requests: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self.callbacks_posted = 0
        self.callback_failures = 0
        self.connections = 0
        self._order: list[Message] = []
        self._base_url: str | None = None
        self._client: httpx.AsyncClient | None = None
        self._nursery: trio.Nursery | None = None

    # -- serving ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running fake (or `public_url`), no trailing slash."""
        if self._base_url is None:
            raise RuntimeError("FakeTwilio is not serving yet")
        return self._base_url

    async def serve(self, host: str = "127.0.0.1", port: int = 0, *,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on host:port (0: any free port) until cancelled; started() with the port."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        shown = f"[{shown}]" if ":" in shown else shown
        self._base_url = (self.public_url or f"http://{shown}:{bound}").rstrip("/")
        try:
            timeout = httpx.Timeout(self.callbacks.timeout, pool=None)  # queue, don't fail
            async with httpx.AsyncClient(timeout=timeout) as client, \
                    trio.open_nursery() as nursery:
                self._client, self._nursery = client, nursery
                nursery.start_soon(partial(trio.serve_listeners, self._connection, listeners,
                                           handler_nursery=nursery))
                task_status.started(bound)
        finally:
            self._client = self._nursery = None

    async def _connection(self, stream: trio.SocketStream) -> None:
        """One HTTP/1.1 connection: requests answered in turn while it is kept alive."""
        self.connections += 1
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            async with stream:
                while await self._exchange(stream, conn):
                    conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            pass

    async def _exchange(self, stream: trio.SocketStream, conn: h11.Connection) -> bool:
        """Read one request and answer it; whether the connection can carry another."""
        try:
            request = await self._read_request(stream, conn)
        except h11.RemoteProtocolError as exc:
            await self._send(stream, conn, _error(exc.error_status_hint, 20001, str(exc)))
            return False
        if request is None:
            return False
        response = self._dispatch(request)
        if response.action == "hang":
            await self._hang(stream)
            return False
        if response.action == "drop":
            await stream.aclose()
        else:
            await self._send(stream, conn, response)
        if response.created is not None:
            self._start_delivery(response.created)
        return response.action is None and conn.our_state is h11.DONE \
            and conn.their_state is h11.DONE

    async def _read_request(self, stream: trio.SocketStream,
                            conn: h11.Connection) -> _Request | None:
        """The next complete request, or None when the client closed or idled out."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_after(self.keepalive_timeout) as scope:
                    conn.receive_data(await stream.receive_some(65536))
                if scope.cancelled_caught:
                    return None
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large", 413)
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return self._request(head, bytes(body))
            else:  # ConnectionClosed, or PAUSED after a client's Connection: close
                return None

    @staticmethod
    def _request(head: h11.Request, body: bytes) -> _Request:
        target = urlsplit(head.target.decode("ascii", "replace"))
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in head.headers}
        return _Request(head.method.decode("ascii"), unquote(target.path),
                        parse_qsl(target.query, keep_blank_values=True), headers, body)

    async def _send(self, stream: trio.SocketStream, conn: h11.Connection,
                    response: _Response) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        headers = [("Content-Type", response.content_type),
                   ("Content-Length", str(len(response.body))),
                   ("Date", format_datetime(datetime.now(UTC), usegmt=True)),
                   ("Twilio-Request-Id", _sid("RQ")), *response.headers]
        data = conn.send(h11.Response(status_code=response.status, headers=headers,
                                      reason=_REASONS.get(response.status, b"")))
        if response.body:
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)

    async def _hang(self, stream: trio.SocketStream) -> None:
        """Hold the connection unanswered until the client closes it or `hang_seconds` pass."""
        with trio.move_on_after(self.faults.hang_seconds):
            while await stream.receive_some(65536):
                pass

    # -- routing ---------------------------------------------------------------------------

    def _dispatch(self, request: _Request) -> _Response:
        try:
            return self._route(request)
        except Exception:  # one bad request must not bring the fake down
            log.exception("fake provider failed on %s %s", request.method, request.path)
            self.requests["error"] += 1
            return _error(500, 20500, "Internal Server Error")

    def _route(self, request: _Request) -> _Response:
        prefix = f"/{API_VERSION}/Accounts/"
        account, _, tail = request.path.removeprefix(prefix).partition("/")
        if not request.path.startswith(prefix) or not tail:
            return self._not_found(request)
        media = _MEDIA.fullmatch(tail)
        public_media = bool(media and not media["json"] and not self.media_auth)
        if not public_media and not self._authorized(request):
            self.requests["unauthorized"] += 1
            return _error(401, 20003, "Authenticate",
                          [("WWW-Authenticate", 'Basic realm="Twilio API"')])
        if account != self.account_sid:
            return self._not_found(request)
        if tail == "Messages.json" and request.method == "POST":
            return self._create(request)
        if request.method != "GET":
            return _error(405, 20004, "Method not allowed")
        if tail == "Messages.json":
            return self._list(request)
        if match := _MESSAGE.fullmatch(tail):
            return self._fetch(request, match["sid"])
        if match := _MEDIA_LIST.fullmatch(tail):
            return self._media_list(request, match["sid"])
        if media:
            return self._media_item(request, media["sid"], media["media"], bool(media["json"]))
        return self._not_found(request)

    def _authorized(self, request: _Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).partition(b":")
        except binascii.Error:
            return False
        return hmac.compare_digest(user, self.account_sid.encode()) \
            & hmac.compare_digest(password, self.auth_token.encode())

    def _not_found(self, request: _Request) -> _Response:
        self.requests["not_found"] += 1
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    # -- creating messages -----------------------------------------------------------------

    def _create(self, request: _Request) -> _Response:
        self.requests["messages.create"] += 1
        fault = self.faults.next()
        if fault != "ok":
            self.faults_injected[fault] += 1
        if fault == "429":
            return self._too_many()
        if fault == "500":
            return _error(500, 20500, "Internal Server Error")
        if fault == "hang":
            return _Response(0, action="hang")
        form = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        fields = dict(form)
        problem = self._invalid(fields, [value for name, value in form if name == "MediaUrl"])
        if problem is not None:
            return _Response(0, action="drop") if fault == "drop" else problem
        if self._too_soon(fields["From"]):
            self.faults_injected["per_from_rate"] += 1
            return self._too_many()
        message = self._accept(fields, [value for name, value in form if name == "MediaUrl"])
        if fault == "drop":
            return _Response(0, action="drop", created=message)
        response = _json(201, message.resource())
        response.created = message
        return response

    def _too_many(self) -> _Response:
        retry = self.faults.retry_after
        headers = [("Retry-After", str(retry))] if retry is not None else []
        return _error(429, 20429, "Too Many Requests", headers)

    def _invalid(self, fields: dict[str, str], media_urls: list[str]) -> _Response | None:
        """Twilio's 400 for a bad create request, or None."""
        to = fields.get("To", "")
        if not _E164.fullmatch(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not fields.get("From"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not fields.get("Body") and not media_urls:
            return _error(400, 21602, "Message body is required.")
        if to in self.opted_out:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        return None

    def _too_soon(self, from_: str) -> bool:
        interval, times = self.faults.per_from_interval, self.accepted_at.get(from_)
        return interval is not None and bool(times) and trio.current_time() - times[-1] < interval

    def _accept(self, fields: dict[str, str], media_urls: list[str]) -> Message:
        """Create the outbound message and record it."""
        callback = fields.get("StatusCallback") or None
        message = self._store(_sid("MM" if media_urls else "SM"), to=fields["To"],
                              from_=fields["From"], body=fields.get("Body", ""),
                              direction="outbound-api", status="queued")
        message.status_callback = callback
        for url in media_urls:
            kind = mimetypes.guess_type(urlsplit(url).path)[0] or "application/octet-stream"
            self._add_media(message, kind, b"", url)
        outbox = parse_qs(urlsplit(callback).query).get("outbox", [None])[0] if callback else None
        if outbox is not None:
            self.creations_by_outbox[outbox] += 1
        now = trio.current_time()
        self.accepted_at[message.from_].append(now)
        self.sent.append(SentRecord(message.sid, message.to, message.from_, message.body,
                                    media_urls, callback, outbox, now, time.time()))
        return message

    def _store(self, sid: str, **fields: Any) -> Message:
        message = Message(sid, self.account_sid, created=time.time(), seq=len(self._order),
                          **fields)
        self.messages[sid] = message
        self._order.append(message)
        return message

    def _add_media(self, message: Message, content_type: str, data: bytes,
                   url: str | None = None) -> Media:
        item = Media(_sid("ME"), message.sid, self.account_sid, content_type, data,
                     message.created, url)
        self.media[item.sid] = item
        message.media.append(item)
        return item

    # -- delivery and status callbacks -----------------------------------------------------

    def _start_delivery(self, message: Message) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._deliver, message)

    async def _deliver(self, message: Message) -> None:
        """Move the message to sent, then delivered/undelivered, posting the callbacks."""
        cb = self.callbacks
        steps = ["sent", "undelivered" if message.to in cb.undelivered else "delivered"]
        if cb.chance(cb.rate_reverse):
            steps.reverse()
        for status in steps:
            await trio.sleep(cb.delay)
            self._advance(message, status)
            if message.status_callback and cb.enabled:
                for _ in range(2 if cb.chance(cb.rate_duplicate) else 1):
                    await self._post_callback(message, status)

    @staticmethod
    def _advance(message: Message, status: str) -> None:
        """Apply a status to the resource, never backwards."""
        rank = {"queued": 0, "sent": 1, "delivered": 2, "undelivered": 2}
        if rank[status] <= rank.get(message.status, 0):
            return
        message.status, message.updated = status, time.time()
        message.sent = message.sent or message.updated
        if status == "undelivered":
            message.error_code, message.error_message = 30003, "Unreachable destination handset"

    async def _post_callback(self, message: Message, status: str) -> None:
        assert message.status_callback is not None
        params = [("MessageSid", message.sid), ("SmsSid", message.sid),
                  ("MessageStatus", status), ("SmsStatus", status),
                  ("AccountSid", self.account_sid), ("From", message.from_),
                  ("To", message.to), ("ApiVersion", API_VERSION)]
        if status in ("failed", "undelivered"):
            params.append(("ErrorCode", str(message.error_code or 30003)))
        try:
            code, _ = await self._post_form(message.status_callback, params)
        except httpx.HTTPError as exc:
            log.debug("status callback to %s failed: %r", message.status_callback, exc)
            code = 0
        self.callbacks_posted += 1
        if not 200 <= code < 300:
            self.callback_failures += 1

    async def _post_form(self, url: str, params: Params) -> tuple[int, bytes]:
        """POST `params` form-encoded to `url`, signed the way Twilio signs."""
        if self._client is None:
            raise RuntimeError("FakeTwilio is not serving")
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": _sid(""),
                   "X-Twilio-Signature": compute_signature(self.auth_token, url, params)}
        response = await self._client.post(url, content=urlencode(params).encode(),
                                            headers=headers)
        return response.status_code, response.content

    # -- inbound ---------------------------------------------------------------------------

    def record_missed_inbound(self, *, from_: str, to: str, body: str,
                              media: Sequence[tuple[str, bytes]] = (),
                              message_sid: str | None = None) -> Message:
        """Store an inbound message (and its media) without posting a webhook for it.

        With a `message_sid` already stored, that message is returned unchanged.
        """
        if message_sid in self.messages:
            return self.messages[message_sid]
        sid = message_sid or _sid("MM" if media else "SM")
        message = self._store(sid, to=to, from_=from_, body=body, direction="inbound",
                              status="received")
        message.sent = message.created
        for content_type, data in media:
            self._add_media(message, content_type, data)
        return message

    async def send_inbound(self, webhook_url: str, *, from_: str, to: str, body: str,
                           media: Sequence[tuple[str, bytes]] = (),
                           message_sid: str | None = None) -> tuple[int, bytes]:
        """Store an inbound message and POST Twilio's signed webhook; (status, body) back.

        Pass the `message_sid` of an earlier one to deliver it again (a duplicate webhook).
        """
        message = self.record_missed_inbound(from_=from_, to=to, body=body, media=media,
                                             message_sid=message_sid)
        self.requests["webhook"] += 1
        return await self._post_form(webhook_url, self.webhook_params(message))

    def webhook_params(self, message: Message) -> Params:
        """The form fields of Twilio's incoming-message webhook for `message`."""
        params = [("MessageSid", message.sid), ("SmsMessageSid", message.sid),
                  ("SmsSid", message.sid), ("AccountSid", self.account_sid),
                  ("From", message.from_), ("To", message.to), ("Body", message.body),
                  ("NumMedia", str(len(message.media))),
                  ("NumSegments", str(segments(message.body))), ("SmsStatus", "received"),
                  ("ApiVersion", API_VERSION)]
        for side, number in (("From", message.from_), ("To", message.to)):
            params += [(f"{side}City", ""), (f"{side}State", ""), (f"{side}Zip", ""),
                       (f"{side}Country", _country(number))]
        for index, item in enumerate(message.media):
            params += [(f"MediaUrl{index}", self.media_url(item)),
                       (f"MediaContentType{index}", item.content_type)]
        return params

    def media_url(self, item: Media) -> str:
        """Where the fake serves the bytes of `item`."""
        return f"{self.base_url}{_messages_path(self.account_sid)}/{item.parent_sid}/Media/" \
            f"{item.sid}"

    # -- reading messages ------------------------------------------------------------------

    def _fetch(self, request: _Request, sid: str) -> _Response:
        self.requests["messages.fetch"] += 1
        message = self.messages.get(sid)
        return _json(200, message.resource()) if message else self._not_found(request)

    def _list(self, request: _Request) -> _Response:
        self.requests["messages.list"] += 1
        query = dict(request.query)
        try:
            size = min(max(int(query.get("PageSize", 50)), 1), 1000)
            page = max(int(query.get("Page", 0)), 0)
            bounds = {key: _date_bound(query[key])
                      for key in ("DateSent", "DateSent<", "DateSent>") if query.get(key)}
        except ValueError as exc:
            return _error(400, 20001, f"Invalid parameter: {exc}")
        filters = [(key, query[key]) for key in ("To", "From", "DateSent", "DateSent<",
                                                 "DateSent>") if query.get(key)]
        matching = [m for m in reversed(self._order) if self._matches(m, query, bounds)]
        start = self._page_start(matching, query.get("PageToken", ""), page, size)
        items = matching[start:start + size]
        body = self._paging(request, filters, page, size, items,
                            more=start + size < len(matching))
        body["messages"] = [message.resource() for message in items]
        return _json(200, body)

    @staticmethod
    def _matches(message: Message, query: dict[str, str],
                 bounds: dict[str, date | datetime]) -> bool:
        if query.get("To") and message.to != query["To"]:
            return False
        if query.get("From") and message.from_ != query["From"]:
            return False
        moment = datetime.fromtimestamp(message.sent or message.created, UTC)
        for key, bound in bounds.items():
            value: date | datetime = moment if isinstance(bound, datetime) else moment.date()
            if (key == "DateSent" and value != bound) or (key == "DateSent<" and value > bound) \
                    or (key == "DateSent>" and value < bound):
                return False
        return True

    @staticmethod
    def _page_start(items: list[Message], token: str, page: int, size: int) -> int:
        """Index of a page's first item: after PA<sid>, before PB<sid>, else page * size."""
        sids = [message.sid for message in items]
        if token[:2] in ("PA", "PB") and token[2:] in sids:
            index = sids.index(token[2:])
            return index + 1 if token.startswith("PA") else max(index - size, 0)
        return page * size

    def _paging(self, request: _Request, filters: Params, page: int, size: int,
                items: Sequence[Message | Media], *, more: bool) -> dict[str, Any]:
        """Twilio's paging fields for one page of a list."""
        path = request.path

        def uri(number: int, token: str | None = None) -> str:
            extra = [("PageToken", token)] if token else []
            return f"{path}?{urlencode([*filters, ('PageSize', size), ('Page', number), *extra])}"

        start = page * size
        return {
            "uri": f"{path}?{urlencode(request.query)}" if request.query else path,
            "first_page_uri": uri(0), "page": page, "page_size": size, "start": start,
            "end": start + max(len(items) - 1, 0),
            "next_page_uri": uri(page + 1, f"PA{items[-1].sid}") if more and items else None,
            "previous_page_uri": uri(page - 1, f"PB{items[0].sid}") if page and items else None,
        }

    def _media_list(self, request: _Request, sid: str) -> _Response:
        self.requests["media.list"] += 1
        message = self.messages.get(sid)
        if message is None:
            return self._not_found(request)
        body = self._paging(request, [], 0, 50, message.media[:50], more=len(message.media) > 50)
        body["media_list"] = [item.resource() for item in message.media[:50]]
        return _json(200, body)

    def _media_item(self, request: _Request, sid: str, media_sid: str,
                    as_json: bool) -> _Response:
        self.requests["media.fetch"] += 1
        item = self.media.get(media_sid)
        if item is None or item.parent_sid != sid:
            return self._not_found(request)
        if as_json:
            return _json(200, item.resource())
        return _Response(200, item.data, content_type=item.content_type)

    # -- reporting -------------------------------------------------------------------------

    def duplicates(self) -> dict[str, int]:
        """Outbox ids whose message was created more than once, with the creation counts."""
        return {outbox: count for outbox, count in self.creations_by_outbox.items() if count > 1}

    def summary(self) -> str:
        """A few lines for humans: accepted, duplicates, faults, callbacks, requests."""
        inbound = sum(message.direction == "inbound" for message in self._order)
        dupes = self.duplicates()
        extra = sum(count - 1 for count in dupes.values())
        lines = [f"messages accepted: {len(self.sent)} (inbound stored: {inbound})",
                 f"duplicates by outbox id: {len(dupes)} ids, {extra} extra creations"
                 + (f" e.g. {sorted(dupes)[:5]}" if dupes else ""),
                 f"faults injected: {dict(self.faults_injected) or 'none'}",
                 f"status callbacks: {self.callbacks_posted} posted, "
                 f"{self.callback_failures} failed",
                 f"requests: {dict(self.requests)}, connections: {self.connections}"]
        return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------

_EXAMPLES = """examples:
  python -m loadtest.fake_provider --listen 127.0.0.1:8099 \\
      --account-sid AC00000000000000000000000000000000 --auth-token secret
  python -m loadtest.fake_provider --listen 0.0.0.0:8099 --account-sid AC... --auth-token t \\
      --fault-429 0.05 --fault-500 0.01 --fault-hang 0.01 --fault-drop 0.01 --seed 7

Point the server at it with gateway.url twilio://AC...@127.0.0.1, gateway.api_url
http://127.0.0.1:8099 and the same auth token. Ctrl-C stops the fake and prints what it saw:
messages accepted, duplicates by outbox id, faults injected."""


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} should read HOST:PORT")
    return host.strip("[]"), int(port)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.fake_provider",
                                     description=__doc__.split("\n\n")[0], epilog=_EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 8099),
                        metavar="HOST:PORT", help="default 127.0.0.1:8099; port 0: any free")
    parser.add_argument("--account-sid", required=True)
    parser.add_argument("--auth-token", required=True)
    for name in ("429", "500", "hang", "drop"):
        parser.add_argument(f"--fault-{name}", type=_probability, default=0.0, metavar="P",
                            help=f"probability of a {name!r} fault on each POST Messages.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--retry-after", type=int, default=None, metavar="SECONDS",
                        help="send Retry-After with each 429")
    parser.add_argument("--hang-seconds", type=float, default=60.0)
    parser.add_argument("--no-callbacks", action="store_true", help="post no status callbacks")
    parser.add_argument("--callback-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--public-url", default=None,
                        help="base URL the media links in webhooks use (default: --listen)")
    return parser.parse_args(argv)


def _from_args(args: argparse.Namespace) -> FakeTwilio:
    faults = Faults(rate_429=args.fault_429, rate_500=args.fault_500, rate_hang=args.fault_hang,
                    rate_drop=args.fault_drop, seed=args.seed, retry_after=args.retry_after,
                    hang_seconds=args.hang_seconds)
    callbacks = Callbacks(enabled=not args.no_callbacks, delay=args.callback_delay)
    return FakeTwilio(args.account_sid, args.auth_token, faults=faults, callbacks=callbacks,
                      public_url=args.public_url)


async def _run(fake: FakeTwilio, host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(fake.serve, host, port))
        print(f"fake Twilio listening on {fake.base_url} (Ctrl-C to stop)", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C, then print the summary."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fake_provider %(message)s")
    fake = _from_args(args)
    try:
        trio.run(_run, fake, *args.listen)
    except* KeyboardInterrupt:
        pass
    print(fake.summary(), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
