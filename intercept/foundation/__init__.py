"""The foundation: small leaf modules every layer may use (retry timing, bounded
caches, phone numbers and masking, private files, safe terminal text, metrics,
daily windows and rates, canonical JSON, where the shipped files live, the SSRF guard of
outgoing requests)."""
