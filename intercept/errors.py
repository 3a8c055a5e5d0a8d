"""Exceptions raised by Intercept.

    InterceptError
    ├── ConfigError        a config file or environment override is wrong
    ├── ScenarioError      a scenario file is wrong (file, line and field path in the message)
    │   └── ScenarioErrors several of them, from one check
    ├── EngineError        an event cannot be applied to a conversation's state
    └── GatewayError       the SMS gateway refused a message for good
        ├── GatewayRetryLater     not accepted now (throttled, disconnected): send it later
        └── GatewayOutcomeUnknown it may or may not have gone out: never resend blindly
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


class GatewayError(InterceptError):
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
