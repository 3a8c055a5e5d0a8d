"""Victim outreach: phone numbers found in ads (more to come: import, campaigns, opt-outs)."""

from .extract import Found, find_numbers

__all__ = ["Found", "find_numbers"]
