"""Buyer intelligence: offline enrichment, caller-name lookups, profiles, evidence export.

See docs/evidence.md. Buyer data only: everything here reads conversations through the
buyer-only gate of `intercept.store.reads`.
"""
