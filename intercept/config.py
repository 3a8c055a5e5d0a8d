"""Configuration: a TOML file decoded into Structs, with environment overrides.

Every key of the flat sections (gateway, store, http, runtime, delays, scenarios, optout, api,
media, lookups, retention) can be set from the environment as ``INTERCEPT_<SECTION>_<KEY>``,
e.g. ``INTERCEPT_STORE_PATH=/var/lib/x.db`` (lists, such as media.allowed_hosts, comma-separated).
Secrets are never required in the file: they come from the environment or a ``*_file`` key.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec

from .engine import optout
from .engine.compiler import CONTEXT_VARS, LOOKUP_KINDS
from .engine.durations import Duration, OptionalDuration, decode_duration
from .engine.text import READ_LIMIT
from .engine.yamlsource import split_msgspec_error
from .errors import ConfigError
from .foundation.phone import to_e164


def _d(text: str, type_: type[Duration] = Duration) -> Any:
    """A default duration, written as a user would."""
    return type_.parse(text)


def _empty() -> Any:
    """The default of a duration that may be left empty: none."""
    return OptionalDuration.parse("")


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class GatewayConfig(_Section):
    url: str = "sim://"
    """sim:// (the built-in simulator), smpp://SYSTEM_ID[:PASSWORD]@HOST[:PORT] or
    twilio://ACCOUNT_SID@HOST (Twilio or a provider with its API)."""
    sim_log: str = ""
    """Sim only: append every message the simulated handsets receive to this JSON-lines file."""
    receipts: bool = True
    """Sim only: report each message as delivered."""
    # SMPP (docs/configuration.md, docs/smpp.md)
    password: str = ""
    """SMPP password; wins over the URL's. Meant for INTERCEPT_GATEWAY_PASSWORD."""
    password_file: str = ""
    """SMPP: read the password from this file (used when `password` is empty)."""
    system_type: str = ""
    window: int = 100
    """SMPP: requests in flight on the bind."""
    rate: float = 0.0
    """SMPP: most submit_sm per second; 0 means no limit until the SMSC throttles."""
    source_ton: int = 1
    source_npi: int = 1
    dest_ton: int = 1
    dest_npi: int = 1
    registered_delivery: int = 1
    split: Literal["udh", "udh16", "sar", "payload"] = "udh"
    enquire_link_interval: Duration = _d("30s")
    submit_timeout: Duration = _d("30s")
    on_submit_timeout: Literal["retry", "unknown"] = "retry"
    reconnect_min: Duration = _d("1s")
    reconnect_max: Duration = _d("1m")
    reassembly_timeout: Duration = _d("1m")
    dedupe_window: Duration = _d("10m")
    default_alphabet: Literal["gsm7", "latin-1", "ascii"] = "gsm7"
    receipt_ids: Literal["same", "submit-hex-receipt-decimal", "submit-decimal-receipt-hex"] = (
        "same")
    """SMPP: how the SMSC writes message ids in submit_sm_resp and in receipts."""
    # Twilio-compatible HTTP providers (docs/twilio.md)
    auth_token: str = ""
    """Twilio: the account's auth token; meant for INTERCEPT_GATEWAY_AUTH_TOKEN."""
    auth_token_file: str = ""
    """Twilio: read the auth token from this file (used when `auth_token` is empty)."""
    api_url: str = ""
    """Twilio: the REST API's base URL; default https://HOST from `url` (tests: a fake)."""
    public_url: str = ""
    """Twilio: this server's URL as the provider sees it (behind a proxy: the proxy's), used
    to check webhook signatures and to build status-callback URLs."""
    rate_per_number: float = 1.0
    """Twilio: most messages per second from one of our numbers (1 for a long code)."""
    connections: int = 20
    """Twilio: HTTP requests to the provider in flight at once."""
    http2: bool = True
    """Twilio: speak HTTP/2 to the provider when it offers it."""
    request_timeout: Duration = _d("15s")
    catch_up: Duration = _d("0s")
    """Twilio: on start, fetch inbound messages of this recent period that webhooks missed
    (0s: off)."""

    _SMPP_DURATIONS = ("enquire_link_interval", "submit_timeout", "reconnect_min",
                       "reconnect_max", "reassembly_timeout", "dedupe_window")

    def __post_init__(self) -> None:
        problem = None
        if self.url.startswith("smpp:"):
            problem = self.smpp_problem()
        elif self.url.startswith("twilio:"):
            problem = self.twilio_problem()
        if problem:
            raise ValueError(problem)

    def twilio_problem(self) -> str | None:
        """The first thing wrong with the Twilio settings, as a sentence naming the key."""
        from urllib.parse import urlsplit

        try:
            url = urlsplit(self.url)
            url.port  # noqa: B018 - validates the port
        except ValueError as exc:
            return f"url {self.display_url!r} is not a valid URL ({exc})"
        if not url.username or not url.hostname or url.path not in ("", "/"):
            return (f"url {self.display_url!r} should read twilio://ACCOUNT_SID@HOST, e.g. "
                    "twilio://AC0123456789abcdef0123456789abcdef@api.twilio.com (the auth token "
                    "comes from INTERCEPT_GATEWAY_AUTH_TOKEN or gateway.auth_token_file)")
        if url.password:
            return ("url: put the auth token in INTERCEPT_GATEWAY_AUTH_TOKEN or "
                    "gateway.auth_token_file, not in the URL")
        for name in ("api_url", "public_url"):
            value = getattr(self, name)
            if value:
                parts = urlsplit(value)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    return f"{name} {value!r} should be an http:// or https:// URL"
        if self.rate_per_number <= 0:
            return f"rate_per_number is {self.rate_per_number}; it must be more than 0"
        if self.rate < 0:
            return f"rate is {self.rate}; use a positive number of messages per second, or 0"
        if self.connections < 1:
            return f"connections is {self.connections}; it must be 1 or more"
        if self.request_timeout <= 0:
            return "request_timeout must be longer than 0"
        return None

    def smpp_problem(self) -> str | None:
        """The first thing wrong with the SMPP settings, as a sentence naming the key."""
        from urllib.parse import unquote, urlsplit

        try:
            url = urlsplit(self.url)
            port = url.port
        except ValueError as exc:
            return f"url {self.display_url!r} is not a valid URL ({exc})"
        if not url.hostname or not url.username or url.path not in ("", "/"):
            return (f"url {self.display_url!r} should read smpp://SYSTEM_ID:PASSWORD@HOST:PORT "
                    "(the password may come from INTERCEPT_GATEWAY_PASSWORD instead)")
        if port == 0:
            return f"url {self.display_url!r} has port 0"
        limits = (("system_id in url", unquote(url.username), 15),
                  ("password", self.password or unquote(url.password or ""), 8),
                  ("system_type", self.system_type, 12))
        for name, value, limit in limits:
            if len(value.encode("latin-1", "replace")) > limit:
                return f"{name} is {len(value)} characters; SMPP 3.4 allows at most {limit}"
        if self.window < 1:
            return f"window is {self.window}; it must be 1 or more"
        if self.rate < 0:
            return f"rate is {self.rate}; use a positive number of submits per second, or 0"
        for name in ("source_ton", "source_npi", "dest_ton", "dest_npi", "registered_delivery"):
            value = getattr(self, name)
            if not 0 <= value <= 255:
                return f"{name} is {value}; it must be 0 to 255"
        for name in self._SMPP_DURATIONS:
            if getattr(self, name) <= 0:
                return f"{name} must be longer than 0"
        if self.reconnect_max < self.reconnect_min:
            return "reconnect_max is shorter than reconnect_min"
        return None

    @property
    def display_url(self) -> str:
        """`url` with any password replaced by ***, safe to print and log."""
        head, sep, rest = self.url.partition("://")
        userinfo, at, host = rest.rpartition("@")
        if not at or ":" not in userinfo:
            return self.url
        return f"{head}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


class StoreConfig(_Section):
    path: str = "intercept.db"
    synchronous: Literal["normal", "full"] = "normal"
    """normal survives a killed process; full also survives power loss (slower commits)."""
    batch_max: int = 4000
    checkpoints: Literal["writer", "beside"] = "writer"
    """Where the write-ahead log is copied into the database: in the writer's commits (SQLite's
    way) or from a connection beside it (more texts a second near capacity, a longer tail below
    it: docs/performance.md)."""
    key: str = ""
    """Encrypts the store with SQLCipher (intercept[sqlcipher]); meant for INTERCEPT_STORE_KEY."""
    key_file: str = ""
    """Or the key's file (its first line), relative to the config file."""
    backup_every: OptionalDuration = _empty()
    """Take an online backup this often while serving, e.g. '6h' ('' = never)."""
    backup_dir: str = "backups"
    """Where scheduled backups go, relative to the store file's folder (0700, files 0600)."""
    backup_keep: int = 7
    """How many scheduled backups to keep (the oldest are deleted)."""

    def __post_init__(self) -> None:
        if self.backup_every.text and self.backup_every < 60:
            raise ValueError(f"backup_every: {self.backup_every.text!r} is less than a minute")
        if self.backup_keep < 1:
            raise ValueError("backup_keep: keep at least 1 backup")


class EvidenceConfig(_Section):
    """Evidence bundles (docs/evidence.md)."""

    signing_key: str = "evidence-signing.key"
    """The organisation's Ed25519 key that signs every manifest (made 0600 at the first
    export), relative to the store file's folder."""


class HttpConfig(_Section):
    listen: str = "127.0.0.1:8080"
    enabled: bool = True
    # limits on clients (intercept/http/limits.py)
    header_timeout: Duration = _d("5s")
    """The request line and headers must arrive within this (also the keep-alive idle time)."""
    body_timeout: Duration = _d("30s")
    """The whole body must arrive within this of the headers, or 408 and the connection closes."""
    read_timeout: Duration = _d("30s")
    """A connection that sends nothing for this long is closed."""
    max_connections: int = 512
    """Requests read or handled at once; past it the slowest body is closed, or 503.
    /healthz and /metrics are always answered."""
    max_header_bytes: int = 16384
    backlog: int = 1024
    """Connections the kernel queues before the server accepts them."""
    monitor_listen: str = ""
    """A second address serving only /healthz and /metrics (its own accept queue, so a flood
    on `listen` does not delay them); empty: none."""

    def problem(self) -> str | None:
        """The first thing wrong with these settings, as a sentence naming the key."""
        for name in ("header_timeout", "body_timeout", "read_timeout"):
            if getattr(self, name) <= 0:
                return f"{name} must be longer than 0"
        for name in ("max_connections", "max_header_bytes", "backlog"):
            if getattr(self, name) < 1:
                return f"{name} is {getattr(self, name)}; it must be 1 or more"
        return None


class MediaConfig(_Section):
    """Fetching the photos (MMS media) buyers send: where from, how big, what kinds."""

    enabled: bool = True
    dir: str = "media"
    """Where media files are stored, by SHA-256, relative to the store file's folder."""
    allowed_hosts: list[str] = msgspec.field(default_factory=lambda: [
        "api.twilio.com", "*.twiliocdn.com", "*.twilio.com"])
    """Hosts media may be fetched from (``*.`` matches subdomains); others are refused."""
    max_bytes: int = 5 * 1024 * 1024
    content_types: list[str] = msgspec.field(default_factory=lambda: [
        "image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif",
        "image/bmp", "image/tiff"])
    timeout: Duration = _d("30s")
    concurrency: int = 4
    max_attempts: int = 5
    max_per_message: int = 10
    """Media URLs kept per inbound message; the rest are counted, logged and dropped."""
    allow_private_addresses: bool = False
    """Allow hosts that resolve to private, loopback or link-local addresses (a fake provider
    on the same machine); never in production."""

    def __post_init__(self) -> None:
        if self.max_per_message < 0:
            raise ValueError(f"max_per_message is {self.max_per_message}; use 0 or more")


class ApiConfig(_Section):
    """The admin API under /api/ (docs/api.md). Tokens never need to be in this file."""

    tokens: str = ""
    """``role:token[:name],...``; set it from the environment (INTERCEPT_API_TOKENS)."""
    tokens_file: str = ""
    """A file of ``role token [name]`` lines, relative to the config file."""
    token: str = ""
    """The token the API commands send (INTERCEPT_API_TOKEN); empty: `cli_token_file`'s."""
    readers: int = 2
    """Read-only database connections the API's queries run on."""
    cli_token_file: str = ""
    """Where the server writes an admin token for the CLI on its machine at its first start
    (0600); relative to the config file. Empty: next to the store, ``STORE.cli-token``."""
    max_failures: int = 10
    """Failed authentications from one client address within `failure_window` after which
    its API requests are answered 429 for `lockout`."""
    failure_window: Duration = _d("10m")
    lockout: Duration = _d("15m")


class LookupsConfig(_Section):
    """Caller-name and line-type lookups of buyer numbers over a Twilio Lookup v2-compatible
    API (docs/evidence.md). Off by default; each request costs money."""

    provider: Literal["", "twilio"] = ""
    """"" (off) or "twilio": register the caller_name and buyer lookups."""
    api_url: str = "https://lookups.twilio.com"
    account_sid: str = ""
    auth_token: str = ""
    """Meant for INTERCEPT_LOOKUPS_AUTH_TOKEN."""
    auth_token_file: str = ""
    """Read the auth token from this file, relative to the config file (when `auth_token`
    is empty)."""
    timeout: Duration = _d("5s")
    cache_ttl: Duration = _d("30d")
    """How long an answer is reused for the same number."""
    daily_budget: int = 500
    """Most requests per UTC day; 0 means none."""
    breaker_failures: int = 5
    """Consecutive failures after which requests stop for `breaker_cooldown`."""
    breaker_cooldown: Duration = _d("5m")

    def problem(self) -> str | None:
        """The first thing wrong with these settings, as a sentence naming the key."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"api_url {self.api_url!r} should be an http:// or https:// URL"
        if self.provider and not self.account_sid:
            return "account_sid is needed with provider = \"twilio\""
        if self.daily_budget < 0:
            return f"daily_budget is {self.daily_budget}; use 0 or more"
        if self.breaker_failures < 1:
            return f"breaker_failures is {self.breaker_failures}; it must be 1 or more"
        return None


class HealthConfig(_Section):
    """Number health: each of our numbers' failed deliveries over a recent window."""

    window: Duration = _d("24h")
    """How far back deliveries count."""
    min_messages: int = 20
    """Fewer settled messages than this in the window say nothing: no pause."""
    pause_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.25
    """Campaigns stop sending from a number whose failed share reaches this (0: never)."""
    interval: Duration = _d("1m")
    """How often the server reads it (metrics, campaign pauses); at least a second."""

    def __post_init__(self) -> None:
        if self.min_messages < 1:
            raise ValueError(f"min_messages is {self.min_messages}; use 1 or more")
        if self.interval < 1:
            raise ValueError(f"interval is {self.interval.text!r}; use at least 1s (the server "
                             "reads the store every interval)")


class HandoffsConfig(_Section):
    """Alerts that reach a person when conversations are handed off, and the queue's metrics
    (docs/advocates.md). An alert says how many hand-offs are new and urgent, how many are
    open and how long the oldest has waited: never a message or a number of theirs."""

    interval: Duration = _d("30s")
    """How often the server looks at the queue (metrics, alerts); at least a second."""
    coalesce: Duration = _d("5m")
    """New hand-offs within this long of the last alert wait for the next one, together;
    an urgent one is alerted at the next look."""
    oncall_number: str = ""
    """An on-call advocate's phone, texted through the gateway; empty: no texts."""
    oncall_from: str = ""
    """Which of our numbers texts it (default: the first outreach number, else the first)."""
    webhook_url: str = ""
    """POSTed a JSON alert signed with HMAC-SHA256 (header X-Intercept-Signature)."""
    webhook_secret: str = ""
    """The signing key; meant for INTERCEPT_HANDOFFS_WEBHOOK_SECRET."""
    webhook_secret_file: str = ""
    """Read the signing key from this file, relative to the config file (when
    `webhook_secret` is empty)."""
    webhook_timeout: Duration = _d("10s")
    webhook_attempts: int = 4
    """Tries of one alert (with backoff between them) before it counts as failed."""

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"interval is {self.interval.text!r}; use at least 1s (the server "
                             "reads the queue every interval)")
        if self.webhook_attempts < 1:
            raise ValueError(f"webhook_attempts is {self.webhook_attempts}; use 1 or more")
        if self.oncall_number and to_e164(self.oncall_number) is None:
            raise ValueError(f"oncall_number {self.oncall_number!r} is not a valid phone "
                             "number (write it as +12065550199)")
        if self.webhook_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.webhook_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook_url {self.webhook_url!r} should be an http:// or "
                                 "https:// URL")
            if not (self.webhook_secret or self.webhook_secret_file):
                raise ValueError("webhook_url needs webhook_secret (or webhook_secret_file) "
                                 "to sign its alerts")


class RetentionConfig(_Section):
    """Scheduled purging of old conversations (docs/evidence.md#retention)."""

    buyer_after: OptionalDuration = _empty()
    """Delete buyer conversations idle this long (e.g. "180d"); empty: never."""
    outreach_after: OptionalDuration = _empty()
    """The same for outreach conversations; empty: never."""
    interval: Duration = _d("1d")
    """How often the server purges (when either of the above is set)."""
    replay_guard: OptionalDuration = _d("365d", OptionalDuration)
    """How long a purge keeps the hashed ids of the messages it deleted, so that a gateway
    delivering one again (a replayed webhook) is refused; empty or "0s": not kept."""

    def __post_init__(self) -> None:
        if self.interval < 60:
            raise ValueError(f"interval is {self.interval.text!r}; use at least 1m (each run "
                             "scans the store for conversations to purge)")


class RuntimeConfig(_Section):
    hibernate_after: Duration = _d("2m")
    """An actor with nothing to do for this long ends its task; its state stays in the store."""
    inbox_size: int = 64
    max_crashes: int = 3
    """Crashes in a row after which a conversation is parked instead of restarted."""
    shutdown_grace: Duration = _d("10s")
    read_limit: Annotated[int, msgspec.Meta(ge=160)] = READ_LIMIT
    """Characters of a reply the scenario engine matches on (the whole text is still stored)."""
    collector_sweep: OptionalDuration = _d("1h", OptionalDuration)
    """`intercept serve` freezes what survives each garbage collection and sweeps this often
    (one pause that walks every live conversation); '' = never freeze after start-up."""

    def __post_init__(self) -> None:
        if self.collector_sweep.text and self.collector_sweep < 60:
            raise ValueError(f"collector_sweep: {self.collector_sweep.text!r} is less than a "
                             "minute (each sweep pauses the server; '' turns freezing off)")


class DelayConfig(_Section):
    """Human-like reply delays: reading time + thinking + typing time, with jitter."""

    enabled: bool = True
    read_cps: float = 25.0
    type_cps: float = 5.0
    think: Duration = _d("2s")
    min: Duration = _d("3s")
    max: Duration = _d("2m")
    jitter: float = 0.35
    scale: float = 1.0


class ScenariosConfig(_Section):
    dir: str = "../scenarios"
    """Folder of scenario files, relative to the config file."""


LanguageCode = Annotated[str, msgspec.Meta(pattern="^[a-z]{2,3}$")]


class OptOutLanguage(_Section):
    """Opt-out words and answers in one more language (STOP and its family always work)."""

    stop: list[str] = []
    """First words that opt the sender out, like STOP."""
    start: list[str] = []
    """First words that opt the sender back in, like START."""
    help: list[str] = []
    """First words that ask for help, like HELP."""
    confirmation: str = ""
    """The answer to an opt-out in this language ("": the default one)."""
    opt_in_confirmation: str = ""
    help_text: str = ""


class OptOutConfig(_Section):
    """What the runtime answers to STOP / START / HELP when the scenario does not."""

    confirmation: str = ("You have been unsubscribed and will not get any more messages from "
                         "this number. Reply START to undo.")
    opt_in_confirmation: str = "You are subscribed again. Reply STOP to unsubscribe."
    help: str = "Reply STOP to stop getting messages from this number."
    languages: dict[LanguageCode, OptOutLanguage] = {}
    """Words and answers per language: every language's words work in every conversation;
    the answers follow the conversation's language."""

    def words(self) -> dict[str, Literal["opt_out", "opt_in", "help"]]:
        """The configured words of every language, folded, with what each does."""
        out: dict[str, Literal["opt_out", "opt_in", "help"]] = {}
        for one in self.languages.values():
            for kind, words in (("help", one.help), ("opt_in", one.start),
                                ("opt_out", one.stop)):
                for word in words:
                    out[optout.fold_word(word)] = kind  # type: ignore[assignment]
        return out

    def texts(self, language: str) -> tuple[str, str, str]:
        """(opt-out confirmation, opt-in confirmation, help) for a conversation in
        `language`; what a language leaves empty is the default text."""
        one = self.languages.get(language)
        if one is None:
            return self.confirmation, self.opt_in_confirmation, self.help
        return (one.confirmation or self.confirmation,
                one.opt_in_confirmation or self.opt_in_confirmation,
                one.help_text or self.help)


class Persona(_Section):
    name: str
    age: int | None = None
    style: str = ""
    language: LanguageCode | Literal[""] = ""
    """The language conversations on this number start in (when the scenario speaks it)."""


class CityText(_Section):
    """A city's values in one more language ("": the city's own)."""

    name: str = ""
    link: str = ""
    deterrence: str = ""


class City(_Section):
    name: str
    link: str
    """The city's deterrence resource (help for men who want to stop buying sex)."""
    region: str = "US"
    timezone: str = "UTC"
    deterrence: str = ""
    """The city's own deterrence text, for scenarios that send {city.deterrence}."""
    languages: dict[LanguageCode, CityText] = {}
    """The name, link and deterrence text in other languages: a conversation in that language
    gets them in {city.name}, {city.link} and {city.deterrence}."""


class Number(_Section):
    number: str
    city: str
    scenario: str
    persona: Persona
    kind: Literal["buyer", "outreach"] = "buyer"
    """buyer: a decoy number buyers text; outreach: a number campaigns text victims from.
    Conversations take their number's kind, and outreach data never mixes with buyer data."""
    rate: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    """Most messages per second from this number, as contracted with the carrier (0: the
    gateway's default: Twilio's rate_per_number; over SMPP no limit of its own)."""


class Campaign(_Section):
    """Victim outreach: text the numbers found in a city's ads, once, within quiet hours."""

    name: str
    city: str
    numbers: list[str]
    """Our sending numbers: [[numbers]] of the same city with kind = "outreach"."""
    variants: list[str] = []
    """First texts to choose from (A/B), with {persona.*} and {city.*}; empty: the
    scenario's own opening."""
    scenario: str = ""
    """The scenario that handles replies; empty: the sending numbers' scenario."""
    window: str = "09:00-20:00"
    """When texts may go out, in the recipient's local time."""
    rate_per_number: str = "1/m"
    rate: str = "10/m"
    contact_again_after: Duration = _d("90d")
    """Never text a number again within this long of the last campaign text (any campaign)."""


class WebhookConfig(_Section):
    """``[webhooks.NAME]``: one webhook scenarios may call (``webhook: {call: NAME}``)."""

    url: str
    """Where the chosen variables are POSTed (https; its host must be in webhooks.allow)."""
    timeout: Duration = _d("10s")
    """How long one attempt may take."""
    retries: int = 3
    """Attempts after the first (timeouts, connection errors, 408, 429, 5xx); 0 to 10."""
    deadline: Duration = _d("30s")
    """How long all attempts and the waits between them may take."""
    secret_env: str = ""
    """The environment variable holding the HMAC-SHA256 signing key ("": unsigned)."""


class WebhooksConfig(_Section):
    """``[webhooks]``: where scenario webhooks may go (docs/configuration.md#webhooks)."""

    allow: list[str] = []
    """Hosts webhooks may call (``*.`` matches subdomains); a webhook's URL must be one."""
    allow_private: bool = False
    """Allow private and loopback addresses, and plain http (tests, a service on this
    machine); never in production."""
    max_reply_bytes: int = 65536
    """A reply larger than this is refused (its fields are not used)."""
    concurrency: int = 32
    """Calls in flight at once, over all conversations."""
    calls: dict[str, WebhookConfig] = {}
    """The ``[webhooks.NAME]`` tables, by name."""


class Config(_Section, dict=True):
    gateway: GatewayConfig = msgspec.field(default_factory=GatewayConfig)
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    runtime: RuntimeConfig = msgspec.field(default_factory=RuntimeConfig)
    delays: DelayConfig = msgspec.field(default_factory=DelayConfig)
    scenarios: ScenariosConfig = msgspec.field(default_factory=ScenariosConfig)
    optout: OptOutConfig = msgspec.field(default_factory=OptOutConfig)
    media: MediaConfig = msgspec.field(default_factory=MediaConfig)
    lookups: LookupsConfig = msgspec.field(default_factory=LookupsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    evidence: EvidenceConfig = msgspec.field(default_factory=EvidenceConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    handoffs: HandoffsConfig = msgspec.field(default_factory=HandoffsConfig)
    webhooks: WebhooksConfig = msgspec.field(default_factory=WebhooksConfig)
    cities: dict[str, City] = {}
    numbers: list[Number] = []
    campaigns: list[Campaign] = []
    source: str = ""
    """The file this was read from (set by `load_config`)."""

    @property
    def base_dir(self) -> Path:
        return Path(self.source).parent if self.source else Path.cwd()

    @property
    def scenario_dir(self) -> Path:
        return (self.base_dir / self.scenarios.dir).resolve()

    @property
    def media_dir(self) -> Path:
        """``media.dir``, relative to the folder of the store file."""
        return (Path(self.store.path).parent / self.media.dir).resolve()

    def number(self, e164: str) -> Number | None:
        return self._by_number.get(e164)

    def campaign(self, name: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.name == name), None)

    def context_for(self, number: Number) -> dict[str, str]:
        """The persona.* and city.* placeholder values of one of our numbers."""
        city = self.cities[number.city]
        values = {
            "persona.name": number.persona.name,
            # interned: every conversation of the number holds these strings in its vars
            "persona.age": "" if number.persona.age is None else sys.intern(
                str(number.persona.age)),
            "persona.style": number.persona.style,
            "city.name": city.name,
            "city.link": city.link,
            "city.region": city.region,
        }
        if number.persona.language:
            values["persona.language"] = number.persona.language
        if city.deterrence:
            values["city.deterrence"] = city.deterrence
        assert set(values) <= CONTEXT_VARS
        for language, text in city.languages.items():
            for key in ("name", "link", "deterrence"):
                if getattr(text, key):
                    values[sys.intern(f"city.{key}@{language}")] = getattr(text, key)
        return values

    def take_numbers(self, other: Config) -> None:
        """Take `other`'s [[numbers]] and [cities] (a reload of a running server; see
        intercept/runtime/config_reload.py). Everything holding this config sees them."""
        self.numbers, self.cities = other.numbers, other.cities
        self.__post_init__()

    def __post_init__(self) -> None:
        self._by_number = {n.number: n for n in self.numbers}


_FLAT_SECTIONS = ("gateway", "store", "http", "runtime", "delays", "scenarios", "optout",
                  "api", "media", "lookups", "retention", "evidence", "health", "handoffs")
_LIST_KEYS = {("media", "allowed_hosts"), ("media", "content_types")}
"""Keys whose environment override is a comma-separated list."""


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read `path`, apply ``INTERCEPT_*`` overrides from `environ`, validate everything."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return config_from_dict(raw, source=str(path), environ=environ)


def config_from_dict(raw: dict[str, Any], *, source: str = "<config>",
                     environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    overrides = _apply_environment(raw, environ, source)
    raw["source"] = source
    problems: list[str] = []
    raw = _durations(raw, Config, (), overrides, problems)
    _webhook_tables(raw, source, overrides)
    cities = raw.get("cities")
    if isinstance(cities, dict):
        # msgspec reports a bad dict value at "cities[...]": check each city to name it
        for key, city in cities.items():
            _convert(city, City, source, ("cities", key), overrides)
    config = _convert(raw, Config, source, (), overrides)
    _check(config, source, overrides, problems)
    return config


def _durations(data: Any, type_: Any, path: tuple[str | int, ...],
               overrides: Mapping[str, str], problems: list[str]) -> Any:
    """`data` (raw, to be decoded as `type_`) with every bad `Duration` field left out and
    named in `problems`, so that all of them are reported with the config's other problems
    (msgspec stops at the first); the good ones are parsed again, once, by the dec_hook."""
    if isinstance(data, list) and get_origin(type_) is list:
        (item,) = get_args(type_)
        return [_durations(v, item, (*path, i), overrides, problems) for i, v in enumerate(data)]
    if not (isinstance(data, dict) and isinstance(type_, type)
            and issubclass(type_, msgspec.Struct)):
        return data
    kept = dict(data)
    for field in msgspec.structs.fields(type_):
        if field.encode_name not in kept:
            continue
        value, kind = kept[field.encode_name], field.type
        if isinstance(kind, type) and issubclass(kind, Duration):
            if isinstance(value, str):
                try:
                    kind.parse(value)
                except ValueError as exc:
                    where = _where((*path, field.encode_name))
                    problems.append(f"{where}: {exc}{_via(overrides, where)}")
                    del kept[field.encode_name]
        else:
            kept[field.encode_name] = _durations(value, kind, (*path, field.encode_name),
                                                 overrides, problems)
    return kept


def _where(path: Sequence[str | int]) -> str:
    """A key's path as the config names it: ``campaigns[0].window``."""
    where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path)
    return where.replace(".[", "[")


def _convert(data: Any, type_: type, source: str, prefix: tuple[str | int, ...],
             overrides: Mapping[str, str]) -> Any:
    try:
        return msgspec.convert(data, type_, strict=False, dec_hook=decode_duration)
    except msgspec.ValidationError as exc:
        message, path = split_msgspec_error(str(exc))
        where = _where((*prefix, *path))
        message += _via(overrides, where)
        raise ConfigError(f"{source}: {where + ': ' if where else ''}{message}") from None


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str], source: str
                       ) -> dict[str, str]:
    """Put ``INTERCEPT_<SECTION>_<KEY>`` values into `raw`; return {"section.key": variable}."""
    overrides: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith("INTERCEPT_") or name == "INTERCEPT_CONFIG":
            continue
        rest = name[len("INTERCEPT_"):].lower()
        section = next((s for s in _FLAT_SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue
        key = rest[len(section) + 1:]
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{source}: [{section}] must be a table to take {name}")
        raw[section][key] = ([v.strip() for v in value.split(",") if v.strip()]
                             if (section, key) in _LIST_KEYS else value)
        overrides[f"{section}.{key}"] = name
    return overrides


def _via(overrides: Mapping[str, str], where: str) -> str:
    """Point at the environment variable when the bad value came from one."""
    return f" (set by the environment variable {overrides[where]})" if where in overrides else ""


def _check(config: Config, source: str, overrides: Mapping[str, str],
           problems: list[str]) -> None:
    """Raise one `ConfigError` with `problems` (the bad durations) and every other problem."""
    seen: dict[str, int] = {}
    for i, number in enumerate(config.numbers):
        city = config.cities.get(number.city)
        if city is None:
            problems.append(f"numbers[{i}].city: unknown city {number.city!r}; defined cities: "
                            f"{', '.join(sorted(config.cities)) or 'none'}")
        e164 = to_e164(number.number, city.region if city else "US")
        if e164 is None:
            problems.append(f"numbers[{i}].number: {number.number!r} is not a valid phone number")
            continue
        if e164 in seen:
            problems.append(f"numbers[{i}].number: {number.number!r} is listed twice (also "
                            f"numbers[{seen[e164]}])")
        seen[e164] = i
        number.number = e164
    problems += _check_campaigns(config)
    problems += _check_optout_words(config.optout)
    problems += _check_evidence(config, overrides)
    problems += _check_handoffs(config)
    problems += _check_webhooks(config.webhooks)
    if http_problem := config.http.problem():
        problems.append(f"http.{http_problem}")
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    config.__post_init__()


def _check_optout_words(texts: OptOutConfig) -> list[str]:
    """Each configured opt-out word is one word (carriers read the first word of a text),
    and no word does two things."""
    problems = []
    meaning: dict[str, str] = {}
    builtin = {**dict.fromkeys(optout.OPT_OUT, "stop"), **dict.fromkeys(optout.OPT_IN, "start"),
               **dict.fromkeys(optout.HELP, "help")}
    for language, one in texts.languages.items():
        for key in ("stop", "start", "help"):
            for j, word in enumerate(getattr(one, key)):
                where = f"optout.languages.{language}.{key}[{j}]"
                folded = optout.fold_word(word)
                if not re.fullmatch(r"[^\W_]+", folded):
                    problems.append(f"{where}: {word!r} must be one word of letters or digits "
                                    "(the first word of a text is what counts)")
                    continue
                other = meaning.get(folded) or builtin.get(folded)
                if other is not None and other != key:
                    problems.append(f"{where}: {word!r} already means {other!r}")
                meaning.setdefault(folded, key)
    return problems


def _check_evidence(config: Config, overrides: Mapping[str, str]) -> list[str]:
    """Problems of [lookups] and [retention], each naming its key."""
    problems = []
    lookup_problem = config.lookups.problem()
    if lookup_problem:
        problems.append(f"lookups.{lookup_problem}")
    for key in ("buyer_after", "outreach_after"):
        value: Duration = getattr(config.retention, key)
        where = f"retention.{key}"
        if value.text and value < 86400:
            problems.append(f"{where}: {value.text!r} is less than a day; write e.g. '180d' "
                            "(or leave it empty to keep conversations)"
                            f"{_via(overrides, where)}")
    return problems


_CAMPAIGN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _check_handoffs(config: Config) -> list[str]:
    """The on-call number is texted from one of ours, and is not one of ours."""
    h = config.handoffs
    ours = {n.number for n in config.numbers}
    problems = []
    if h.oncall_from and to_e164(h.oncall_from) not in ours:
        problems.append(f"handoffs.oncall_from: {h.oncall_from!r} is not one of the [[numbers]]")
    if h.oncall_number and to_e164(h.oncall_number) in ours:
        problems.append(f"handoffs.oncall_number: {h.oncall_number!r} is one of our own "
                        "[[numbers]]; give the on-call advocate's phone")
    if h.oncall_number and not config.numbers:
        problems.append("handoffs.oncall_number: there is no number of ours to text it from")
    return problems


def _webhook_tables(raw: dict[str, Any], source: str, overrides: Mapping[str, str]) -> None:
    """Move the ``[webhooks.NAME]`` tables of `raw` under ``calls``, each checked alone so an
    error names ``webhooks.NAME``."""
    webhooks = raw.get("webhooks")
    if not isinstance(webhooks, dict):
        return
    webhooks = dict(webhooks)
    calls = {k: webhooks.pop(k) for k in list(webhooks) if isinstance(webhooks[k], dict)}
    for name, table in calls.items():
        _convert(table, WebhookConfig, source, ("webhooks", name), overrides)
    webhooks["calls"] = calls
    raw["webhooks"] = webhooks


_WEBHOOK_NAME = re.compile(r"[a-z][a-z0-9_]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_webhooks(webhooks: WebhooksConfig) -> list[str]:
    """Each webhook's name, URL (scheme, host in the allow-list), retries and times."""
    from urllib.parse import urlsplit

    from .foundation.safe_http import host_allowed

    problems = []
    if webhooks.max_reply_bytes < 1:
        problems.append(f"webhooks.max_reply_bytes is {webhooks.max_reply_bytes}; use 1 or more")
    if webhooks.concurrency < 1:
        problems.append(f"webhooks.concurrency is {webhooks.concurrency}; use 1 or more")
    taken = {n.split(".", 1)[0] for n in CONTEXT_VARS} | set(LOOKUP_KINDS)
    for name, hook in webhooks.calls.items():
        where = f"webhooks.{name}"
        if not _WEBHOOK_NAME.fullmatch(name) or name in taken:
            problems.append(f"{where}: name a webhook with lower-case letters, digits and '_', "
                            f"not one of {', '.join(sorted(taken))}")
        try:
            parts = urlsplit(hook.url)
            host = (parts.hostname or "").rstrip(".")
        except ValueError:
            parts, host = None, ""
        schemes = ("https", "http") if webhooks.allow_private else ("https",)
        if parts is None or parts.scheme not in schemes or not host:
            problems.append(f"{where}.url: {hook.url!r} should be an https:// URL"
                            + ("" if webhooks.allow_private else " (plain http only with "
                               "webhooks.allow_private, for tests)"))
        elif not host_allowed(host, webhooks.allow):
            problems.append(f"{where}.url: its host {host} is not in webhooks.allow; add it "
                            "there if this service is trusted")
        if not 0 <= hook.retries <= 10:
            problems.append(f"{where}.retries is {hook.retries}; use 0 to 10")
        if hook.timeout <= 0:
            problems.append(f"{where}.timeout must be longer than zero")
        if hook.deadline < hook.timeout:
            problems.append(f"{where}.deadline ({hook.deadline.text}) is shorter than its "
                            f"timeout ({hook.timeout.text})")
        if hook.secret_env and not _ENV_NAME.fullmatch(hook.secret_env):
            problems.append(f"{where}.secret_env: {hook.secret_env!r} is not the name of an "
                            "environment variable (e.g. INTERCEPT_WEBHOOK_CRM_SECRET)")
    return problems


def _check_campaigns(config: Config) -> list[str]:
    """Problems of the [[campaigns]] entries, each naming its key; normalises their numbers."""
    from .engine.template import Template
    from .foundation.schedule import Window, parse_rate, zone

    problems: list[str] = []
    by_number = {n.number: n for n in config.numbers}
    names: dict[str, int] = {}
    for i, campaign in enumerate(config.campaigns):
        where = f"campaigns[{i}]"
        if not _CAMPAIGN_NAME.fullmatch(campaign.name):
            problems.append(f"{where}.name: {campaign.name!r} is not a campaign name (letters, "
                            "digits, '.', '_' and '-', at most 64)")
        elif campaign.name in names:
            problems.append(f"{where}.name: {campaign.name!r} is used twice (also "
                            f"campaigns[{names[campaign.name]}])")
        names.setdefault(campaign.name, i)
        city = config.cities.get(campaign.city)
        if city is None:
            problems.append(f"{where}.city: unknown city {campaign.city!r}; defined cities: "
                            f"{', '.join(sorted(config.cities)) or 'none'}")
        else:
            try:
                zone(city.timezone)
            except ValueError as exc:
                problems.append(f"cities.{campaign.city}.timezone: {exc}")
        if not campaign.numbers:
            problems.append(f"{where}.numbers: give at least one of our numbers to send from")
        scenarios = set()
        for j, raw in enumerate(campaign.numbers):
            e164 = to_e164(raw, city.region if city else "US")
            number = by_number.get(e164) if e164 else None
            if number is None:
                problems.append(f"{where}.numbers[{j}]: {raw!r} is not one of the [[numbers]]")
                continue
            campaign.numbers[j] = number.number
            if number.kind != "outreach":
                problems.append(f"{where}.numbers[{j}]: {number.number} is a {number.kind} "
                                'number; give it kind = "outreach" in [[numbers]] (buyer '
                                "numbers never text victims)")
            if number.city != campaign.city:
                problems.append(f"{where}.numbers[{j}]: {number.number} is a number of "
                                f"{number.city!r}, not of {campaign.city!r}")
            scenarios.add(number.scenario)
        if len(set(campaign.numbers)) < len(campaign.numbers):
            problems.append(f"{where}.numbers: a number is listed twice")
        if campaign.scenario:
            for j, raw in enumerate(campaign.numbers):
                number = by_number.get(raw)
                if number is not None and number.scenario != campaign.scenario:
                    problems.append(f"{where}.numbers[{j}]: {number.number} answers with "
                                    f"scenario {number.scenario!r}, not the campaign's "
                                    f"{campaign.scenario!r}; replies must reach the campaign's "
                                    "scenario")
        elif len(scenarios) > 1:
            problems.append(f"{where}.numbers: the numbers answer with different scenarios "
                            f"({', '.join(sorted(scenarios))}); use one")
        elif scenarios:
            campaign.scenario = scenarios.pop()
        for j, text in enumerate(campaign.variants):
            try:
                unknown = set(Template(text).names) - {
                    k for k in CONTEXT_VARS if k.startswith(("persona.", "city."))}
            except ValueError as exc:
                problems.append(f"{where}.variants[{j}]: {exc}")
                continue
            if not text.strip():
                problems.append(f"{where}.variants[{j}]: the text is empty")
            elif unknown:
                problems.append(f"{where}.variants[{j}]: unknown placeholder "
                                f"{{{sorted(unknown)[0]}}}; use persona.* or city.* ones")
            elif len(text) > 1600:
                problems.append(f"{where}.variants[{j}]: {len(text)} characters; at most 1600")
        for key, parse in (("window", Window.parse), ("rate_per_number", parse_rate),
                           ("rate", parse_rate)):
            try:
                parse(getattr(campaign, key))
            except ValueError as exc:
                problems.append(f"{where}.{key}: {exc}")
    return problems


def read_secret(value: str, file: str, *, key: str, source: str = "<config>",
                base_dir: Path | None = None) -> str:
    """A secret given directly (`value`, e.g. from the environment), else the first line of
    `file` (relative to `base_dir`, the config file's folder; its newline dropped).

    `key` names the setting in errors, e.g. ``gateway.auth_token``.
    """
    if value or not file:
        return value
    path = Path(file)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8").strip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{source}: {key}_file: cannot read {str(path)!r}: "
                          f"{exc.strerror or exc}") from None


def store_key(config: Config) -> str:
    """The store's SQLCipher key: store.key (INTERCEPT_STORE_KEY), else the first line of
    store.key_file; '' for a plain store."""
    return read_secret(config.store.key, config.store.key_file, key="store.key",
                       source=config.source or "<config>", base_dir=config.base_dir)

