"""Intercept: an SMS conversation server for anti-trafficking organisations."""

from .config import Config, load_config
from .errors import (
    ConfigError,
    EngineError,
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayProtocolError,
    GatewayRefused,
    GatewayRetryLater,
    InterceptError,
    LocalProtocolError,
    RemoteProtocolError,
    ScenarioError,
    ScenarioErrors,
)

__version__ = "0.1.0"

__all__ = [
    "Config", "ConfigError", "EngineError", "GatewayError", "GatewayOutcomeUnknown",
    "GatewayProtocolError", "GatewayRefused", "GatewayRetryLater", "InterceptError",
    "LocalProtocolError", "RemoteProtocolError", "ScenarioError", "ScenarioErrors",
    "__version__", "load_config",
]
