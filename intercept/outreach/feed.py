"""Polling an HTTP JSON feed of ads with httpx, with conditional requests.

Each poll sends the ``ETag`` and ``Last-Modified`` of the previous answer back as
``If-None-Match`` / ``If-Modified-Since``, so an unchanged feed costs a 304 and no parsing.
"""

from __future__ import annotations

import httpx

from .ads import BadAd, FeedError, RawAd, read_feed


class FeedPoller:
    """Fetches `url` on each `poll()`; None means the feed has not changed since."""

    def __init__(self, url: str, *, client: httpx.Client, field: str = "text"):
        self.url = url
        self.client = client
        self.field = field
        self.etag: str | None = None
        self.last_modified: str | None = None

    def poll(self) -> list[RawAd | BadAd] | None:
        """The ads of the feed now, or None if unchanged. Raises FeedError with a sentence."""
        headers = {"Accept": "application/json"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        try:
            response = self.client.get(self.url, headers=headers)
        except httpx.HTTPError as exc:
            raise FeedError(f"{self.url}: cannot fetch the feed ({exc or type(exc).__name__})"
                            ) from None
        if response.status_code == 304:
            return None
        if response.status_code >= 400:
            raise FeedError(f"{self.url}: the feed answered HTTP {response.status_code}")
        ads = read_feed(response.content, self.url, self.field)
        self.etag = response.headers.get("etag")
        self.last_modified = response.headers.get("last-modified")
        return ads
