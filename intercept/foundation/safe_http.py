"""The guard against server-side request forgery, shared by every outgoing request to a URL
that configuration or a remote party chose (the media fetcher, scenario webhooks).

The guard is made of addresses, not strings: every host (the first and each redirect's) must
match the configured allow-list, every address it resolves to must be public (unless private
addresses are allowed, for tests and loopback services), and the request goes to that checked
address (the host name travels in the Host header and TLS SNI), so a second DNS answer cannot
point the request elsewhere. Redirects are followed by hand, each hop checked again, at most
`max_redirects`; credentials go only to the host they belong to, never after a downgrade from
https to http. Bodies are read up to a cap.

Errors (`GuardError`, its `outcome` saying what to do) are sentences naming the configuration
key to change:

- `Refused`: the URL, an address or an answer breaks the rules; trying again will not help.
- `Unreachable`: the host could not be resolved; it may work later.
- `BadRedirect`: the host redirected without a usable target, or too many times.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Literal

import httpx
import trio

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses``: how host names are resolved (tests inject their own)."""

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class GuardError(Exception):
    """A guarded request did not get an answer to use; `outcome` says what to do with it:
    "refused" (never retry), "failed" (the host's fault) or "later" (it may work later)."""

    outcome: Literal["refused", "failed", "later"] = "refused"


class Refused(GuardError):
    """The request breaks the rules (host, address, scheme, size): never retried."""

    outcome = "refused"


class Unreachable(GuardError):
    """The host could not be resolved (or resolved to nothing): it may work later."""

    outcome = "later"


class BadRedirect(GuardError):
    """A redirect without a target, or more redirects than allowed."""

    outcome = "failed"


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether `host` is one of `patterns`: exact names, or ``*.suffix`` for any subdomain."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def is_public_address(address: str) -> bool:
    """Whether `address` is a public unicast address; False for private, loopback, link-local,
    multicast, reserved and unspecified ones, and for IPv6 forms wrapping those (IPv4-mapped,
    6to4, NAT64). Raises ValueError if `address` is not an IP address."""
    return _public(ipaddress.ip_address(address.split("%", 1)[0]))


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _public(ip.ipv4_mapped)
        if ip.sixtofour is not None and not _public(ip.sixtofour):
            return False
        if any(ip in net for net in _NAT64):
            return _public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.is_site_local:
            return False
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the order the system prefers (the default)."""
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class Guard:
    """The rules of one kind of outgoing request.

    `what` names the requests in errors ("media", "webhook"); `hosts_key` and `private_key` are
    the configuration keys an error tells the operator to change.
    """

    allowed_hosts: tuple[str, ...]
    hosts_key: str
    private_key: str
    what: str
    allow_private: bool = False
    schemes: frozenset[str] = frozenset({"http", "https"})
    resolver: Resolver = resolve
    credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Exact host name -> (user, password), sent as HTTP Basic auth to that host only."""
    max_redirects: int = 5

    # -- checks

    def check_url(self, url: httpx.URL) -> tuple[str, int]:
        """The host (lower case) and port of `url`, or `Refused`."""
        if url.scheme not in self.schemes:
            allowed = " and ".join(sorted(self.schemes))
            raise Refused(f"only {allowed} {self.what} URLs are used, not "
                          f"{url.scheme or 'a URL without a scheme'}")
        if not url.host:
            raise Refused(f"the {self.what} URL has no host")
        if url.userinfo:
            raise Refused(f"the {self.what} URL carries a user name or password; give "
                          "credentials in the configuration instead")
        host = url.raw_host.decode("ascii").lower().rstrip(".")
        if not host_allowed(host, self.allowed_hosts):
            raise Refused(f"the {self.what} host {host} is not in {self.hosts_key}; add it "
                          "there if it is trusted")
        port = url.port or (443 if url.scheme == "https" else 80)
        return host, port

    async def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses of `host`: `Refused` if any is private (unless allowed),
        `Unreachable` if there is none."""
        try:
            ipaddress.ip_address(host)
            addresses = [host]  # a literal address: nothing to resolve
        except ValueError:
            try:
                addresses = list(await self.resolver(host, port))
            except OSError as exc:
                raise Unreachable(f"the {self.what} host {host} could not be resolved "
                                  f"({exc.strerror or exc})") from exc
        if not addresses:
            raise Unreachable(f"the {self.what} host {host} resolved to no address")
        if self.allow_private:
            return addresses
        for address in addresses:
            try:
                public = is_public_address(address)
            except ValueError:
                public = False
            if not public:
                raise Refused(f"the {self.what} host {host} resolves to {address}, a private "
                              f"or reserved address; only {self.private_key} permits that")
        return addresses

    # -- the request

    async def open(self, client: httpx.AsyncClient, method: str, raw_url: str, *,
                   headers: Mapping[str, str] | None = None, content: bytes | None = None
                   ) -> tuple[str, httpx.Response]:
        """Send `method` to `raw_url` through the checks, following redirects by hand (each
        hop checked; 303, and 301/302 of a POST, continue as GET without a body): the host
        that answered and its response, streamed (read it with `read_capped`, then close
        it)."""
        try:
            url = httpx.URL(raw_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise Refused(f"the {self.what} URL is not a valid URL") from exc
        downgraded = False
        for _ in range(self.max_redirects + 1):
            host, port = self.check_url(url)
            addresses = await self.addresses(host, port)
            auth = None if downgraded else self.credentials.get(host)
            response = await self._send(client, method, url, host, addresses, auth,
                                        headers or {}, content)
            status = response.status_code
            if status not in REDIRECT_CODES:
                return host, response
            await response.aclose()
            location = response.headers.get("location")
            if not location:
                raise BadRedirect(f"{host} answered {status} without saying where to go (no "
                                  "Location header)")
            try:
                target = url.join(location)
            except httpx.InvalidURL as exc:
                raise Refused(f"{host} redirected to an invalid URL") from exc
            downgraded = downgraded or (url.scheme == "https" and target.scheme == "http")
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, content = "GET", None
            url = target
        raise BadRedirect(f"the {self.what} URL redirected more than {self.max_redirects} "
                          "times")

    async def _send(self, client: httpx.AsyncClient, method: str, url: httpx.URL, host: str,
                    addresses: list[str], auth: tuple[str, str] | None,
                    headers: Mapping[str, str], content: bytes | None) -> httpx.Response:
        """Send to the first of `addresses` that accepts a connection."""
        headers = {**headers, "Host": url.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        for i, address in enumerate(addresses):
            request = client.build_request(method, url.copy_with(host=address),
                                           headers=headers, content=content,
                                           extensions=extensions)
            try:
                return await client.send(request, stream=True, follow_redirects=False,
                                         auth=httpx.BasicAuth(*auth) if auth else None)
            except httpx.ConnectError:
                if i == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable: addresses is not empty")


async def read_capped(response: httpx.Response, limit: int, *, host: str, what: str,
                      key: str) -> bytes:
    """The body of `response`, or `Refused` as soon as it is larger than `limit` bytes
    (`key` is the configuration key of the limit, `what` names the body)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(f"the {what} from {host} is {int(declared)} bytes, larger than {key} "
                      f"({limit})")
    chunks: list[bytes] = []
    size = 0
    async with aclosing(response.aiter_bytes()) as body:
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                raise Refused(f"the {what} from {host} is larger than {key} ({limit}); "
                              "stopped reading")
            chunks.append(chunk)
    return b"".join(chunks)


def client(*, timeout: float, concurrency: int, user_agent: str,
           transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """An httpx client for guarded requests: no redirects, no proxy from the environment and
    no keep-alive (connections are keyed by the checked address, so a TLS connection verified
    for one host name must not be reused for another name on that address)."""
    transport = transport or httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=max(1, concurrency), max_keepalive_connections=0))
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False,
                             trust_env=False, headers={"User-Agent": user_agent})
