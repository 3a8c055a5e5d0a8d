"""SMS gateways: the interface, and the transports behind it."""

from ..errors import ConfigError
from .base import DeliveryReceipt, Gateway, InboundMessage, OutboundMessage, Sink
from .sim import SimGateway


def gateway_from_config(config) -> Gateway:
    """Build the gateway named by ``gateway.url``."""
    url = config.gateway.url
    if url.startswith("sim:"):
        return SimGateway(log_path=config.gateway.sim_log or None,
                          receipts=config.gateway.receipts)
    scheme = url.split(":", 1)[0]
    raise ConfigError(f"gateway.url: unsupported scheme {scheme!r} in {url!r}; this version "
                      "supports 'sim://'")


__all__ = [
    "DeliveryReceipt", "Gateway", "InboundMessage", "OutboundMessage", "SimGateway", "Sink",
    "gateway_from_config",
]
