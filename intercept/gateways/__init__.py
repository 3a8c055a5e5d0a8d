"""SMS gateways: the interface, and the transports behind it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import read_secret
from ..errors import ConfigError
from .base import DeliveryReceipt, Gateway, InboundMessage, OutboundMessage, Sink
from .sim import SimGateway

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..config import Config, GatewayConfig
    from ..foundation.metrics import Metrics
    from .smpp.client import SmppSettings
    from .twilio import TwilioSettings


def gateway_from_config(config: Config, *, registry: CollectorRegistry | None = None,
                        metrics: Metrics | None = None) -> Gateway:
    """Build the gateway named by ``gateway.url``; `registry` takes its metrics (SMPP),
    `metrics` the server's (Twilio)."""
    url = config.gateway.url
    if url.startswith("sim:"):
        return SimGateway(log_path=config.gateway.sim_log or None,
                          receipts=config.gateway.receipts)
    if url.startswith("smpp:"):
        from .smpp.client import SmppGateway

        return SmppGateway(smpp_settings(config.gateway, source=config.source,
                                         base_dir=config.base_dir,
                                         number_rates=number_rates(config)),
                           registry=registry)
    if url.startswith("twilio:"):
        from .twilio import TwilioGateway

        return TwilioGateway(twilio_settings(config), metrics=metrics)
    scheme = url.split(":", 1)[0]
    raise ConfigError(f"gateway.url: unsupported scheme {scheme!r} in "
                      f"{config.gateway.display_url!r}; this version supports 'sim://', "
                      "'smpp://' and 'twilio://'")


def twilio_settings(config: Config) -> TwilioSettings:
    """`TwilioSettings` from the ``[gateway]`` section (already validated by the loader).

    The auth token is ``gateway.auth_token`` (e.g. INTERCEPT_GATEWAY_AUTH_TOKEN), else the
    contents of ``gateway.auth_token_file`` (relative to the config file).
    """
    from urllib.parse import unquote, urlsplit

    from ..engine.durations import parse_duration
    from .twilio import TwilioSettings

    gateway, source = config.gateway, config.source or "<config>"
    problem = gateway.twilio_problem()
    if problem:
        raise ConfigError(f"{source}: gateway: {problem}")
    url = urlsplit(gateway.url)
    token = read_secret(gateway.auth_token, gateway.auth_token_file, key="gateway.auth_token",
                        source=source, base_dir=config.base_dir)
    if not token:
        raise ConfigError(f"{source}: gateway: twilio:// needs the account's auth token: set "
                          "INTERCEPT_GATEWAY_AUTH_TOKEN or gateway.auth_token_file")
    host = url.hostname or ""
    api_url = gateway.api_url or f"https://{host}{f':{url.port}' if url.port else ''}"
    return TwilioSettings(
        account_sid=unquote(url.username or ""), auth_token=token, api_url=api_url,
        public_url=gateway.public_url, rate_per_number=gateway.rate_per_number,
        rate=gateway.rate, connections=gateway.connections, http2=gateway.http2,
        request_timeout=parse_duration(gateway.request_timeout),
        catch_up=parse_duration(gateway.catch_up),
        numbers=tuple(n.number for n in config.numbers), number_rates=number_rates(config))


def number_rates(config: Config) -> dict[str, float]:
    """Each of our numbers' own contracted rate (``[[numbers]] rate``), where one is set."""
    return {n.number: n.rate for n in config.numbers if n.rate}


def smpp_settings(gateway: GatewayConfig, *, source: str = "<config>",
                  base_dir: Path | None = None,
                  number_rates: dict[str, float] | None = None) -> SmppSettings:
    """`SmppSettings` from the ``[gateway]`` section (already validated by the config loader).

    The password is the first of: ``gateway.password`` (e.g. INTERCEPT_GATEWAY_PASSWORD), the
    contents of ``gateway.password_file`` (relative to the config file), the URL's password.
    """
    from urllib.parse import unquote, urlsplit

    from ..engine.durations import parse_duration
    from .smpp.client import SmppSettings

    problem = gateway.smpp_problem()
    if problem:
        raise ConfigError(f"{source}: gateway: {problem}")
    url = urlsplit(gateway.url)
    password = read_secret(gateway.password, gateway.password_file, key="gateway.password",
                           source=source, base_dir=base_dir)
    if not gateway.password and len(password.encode("latin-1", "replace")) > 8:
        raise ConfigError(f"{source}: gateway.password_file: the password in "
                          f"{gateway.password_file!r} is {len(password)} characters; SMPP 3.4 "
                          "allows at most 8")
    if not password:
        password = unquote(url.password or "")
    options: dict[str, Any] = {
        name: parse_duration(getattr(gateway, name)) for name in gateway._SMPP_DURATIONS}
    return SmppSettings(
        host=url.hostname or "", port=url.port or 2775, system_id=unquote(url.username or ""),
        password=password, system_type=gateway.system_type, window=gateway.window,
        rate=gateway.rate or None, source_ton=gateway.source_ton,
        source_npi=gateway.source_npi, dest_ton=gateway.dest_ton, dest_npi=gateway.dest_npi,
        registered_delivery=gateway.registered_delivery, split=gateway.split,
        on_submit_timeout=gateway.on_submit_timeout, default_alphabet=gateway.default_alphabet,
        receipt_ids=gateway.receipt_ids, number_rates=dict(number_rates or {}),
        **options)


__all__ = [
    "DeliveryReceipt", "Gateway", "InboundMessage", "OutboundMessage", "SimGateway", "Sink",
    "gateway_from_config", "smpp_settings", "twilio_settings",
]
