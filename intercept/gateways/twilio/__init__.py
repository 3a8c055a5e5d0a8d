"""Twilio and providers that copy its API: REST out, signed webhooks in (docs/twilio.md)."""

from .client import TwilioGateway, TwilioSettings
from .signature import compute_signature, valid_signature

__all__ = ["TwilioGateway", "TwilioSettings", "compute_signature", "valid_signature"]
