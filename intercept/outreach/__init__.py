"""Victim outreach: numbers found in ads, ad import, campaigns and their quiet-hours windows."""

from .extract import Found, find_numbers

__all__ = ["Found", "find_numbers"]
