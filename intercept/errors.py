"""Exceptions raised by Intercept: the whole tree, wherever each class is defined.

Defined here (and exported from ``intercept``)::

    InterceptError
    ├── ConfigError               a config file or environment override is wrong
    ├── ScenarioError             a scenario file is wrong (file, line, field path in the message)
    │   └── ScenarioErrors        several of them, from one check
    ├── EngineError               an event cannot be applied to a conversation's state
    ├── GatewayError              the SMS gateway did not take a message as asked (any of below)
    │   ├── GatewayRefused        refused for good: the outbox row becomes 'failed'
    │   ├── GatewayRetryLater     not accepted now (throttled, disconnected): send it later
    │   └── GatewayOutcomeUnknown it may or may not have gone out: never resend blindly
    ├── GatewayProtocolError      a gateway's protocol session was broken (SMPP): drop the link
    │   ├── LocalProtocolError    we asked the session for something its state forbids (a bug)
    │   └── RemoteProtocolError   the peer sent what the protocol forbids
    ├── StoreError                intercept.store: the database cannot be opened, or is newer
    ├── StoreUnavailable          the store cannot commit now: refuse in the retry form, retry
    └── StoreCorrupt              intercept.store: the database file is damaged

Defined beside the code that raises and catches them (each stays inside its layer)::

    Exception
    ├── HTTPError                 intercept.http.routing: answer a status with a sentence
    ├── AuthError                 intercept.http.auth: 401, 403 or 429 with a sentence
    ├── Parked                    intercept.runtime.actor: the conversation cannot run
    ├── FeedError                 intercept.outreach.ads: a feed cannot be fetched or read
    ├── Failure                   intercept.authoring.transcripts: a step went otherwise
    ├── ExportError               intercept.buyers.export: the bundle cannot be written
    ├── SigningError              intercept.buyers.signing: a key or signature is unusable
    ├── LookupFailed              intercept.buyers.lookups: a lookup gave no answer
    │   ├── CircuitOpen           the provider failed too often lately: not asked now
    │   ├── BudgetSpent           today's lookup budget is spent
    │   └── ProviderError         the provider answered with an error
    ├── GuardError                intercept.foundation.safe_http: no usable answer (any of below)
    │   ├── Refused               the URL or answer breaks the rules: never retried
    │   ├── Unreachable           the host could not be resolved: it may work later
    │   └── BadRedirect           a redirect without a target, or too many
    ├── LinkDown                  intercept.gateways.smpp.client: the SMSC link is unusable
    │   └── BindRefused           the SMSC answered the bind with an error status
    ├── _Bad                      intercept.gateways.smpp.codec (internal): a bad PDU body
    ├── _ListError                intercept.gateways.twilio.client (internal): a list failed
    ├── _Retry                    intercept.runtime.webhooks (internal): try the call again
    ├── _Final                    intercept.runtime.webhooks (internal): the call ends here
    ├── _GiveUp                   intercept.buyers.media (internal): the fetch ends for good
    └── _TryLater                 intercept.buyers.media (internal): the fetch is tried again
    RuntimeError
    └── StoreClosed               intercept.store.writer: the store takes no more writes
    ValueError
    └── TokenExists               intercept.store.tokens: a token of that name exists
    PermissionError
    └── HandoffClaimed            intercept.store.handoffs: another advocate holds the hand-off

Catch `GatewayError` for "not sent as asked"; `GatewayRefused` for "never will be".
"""

from __future__ import annotations


class InterceptError(Exception):
    """Base class for every error Intercept raises on purpose."""


class ConfigError(InterceptError):
    """A configuration file, key or environment override is invalid."""


class ScenarioError(InterceptError):
    """A scenario file is invalid. `str()` reads ``file:line:col: path: message``."""

    def __init__(self, message: str, *, file: str = "", line: int = 0, col: int = 0,
                 path: str = ""):
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.path = path
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "<scenario>"
        if self.line:
            where += f":{self.line}"
            if self.col:
                where += f":{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ScenarioErrors(ScenarioError):
    """Every problem found in one scenario file, in file order."""

    def __init__(self, errors: list[ScenarioError]):
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, file=first.file, line=first.line, col=first.col,
                         path=first.path)

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


class EngineError(InterceptError):
    """An event that the conversation's current state cannot take; the state is unchanged."""


class GatewayProtocolError(InterceptError):
    """A gateway's protocol session (`intercept.gateways.smpp.session`) cannot go on: the
    connection is dropped and opened again. Never about one message, so not a `GatewayError`."""


class LocalProtocolError(GatewayProtocolError):
    """We asked the session for something its state forbids (a request while not bound, a full
    window, an answer to nothing): a bug in the caller. The session is unchanged."""


class RemoteProtocolError(GatewayProtocolError):
    """The peer sent what the protocol forbids (a frame that cannot be framed, a response of
    the wrong kind); the session takes nothing more after it."""


class GatewayError(InterceptError):
    """The SMS gateway did not take a message as asked: the base of the three outcomes below.

    Raised as itself it is read as `GatewayRefused` (the sender's last ``except`` clause)."""


class GatewayRefused(GatewayError):
    """The SMS gateway refused a message for good (the outbox row becomes 'failed')."""


class GatewayRetryLater(GatewayError):
    """The gateway did not accept the message now; the sender tries again after
    `retry_after` seconds (throttling, a full queue, no connection)."""

    def __init__(self, message: str, *, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class GatewayOutcomeUnknown(GatewayError):
    """The message may or may not have gone out (no answer to a submit): the row is marked
    'unknown' and not resent, so the other side never gets it twice."""


class StoreUnavailable(InterceptError):
    """The store cannot commit now; the caller should refuse, in its retry form, and retry.

    Raised by intercept.store (a full disk, an I/O error, a read-only or locked file); defined
    here so that gateways, which answer it in their retry form, need not import the store."""

    def __init__(self, reason: str, *, retry_after: float = 5.0):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"the store cannot commit now ({reason}); try again later")
