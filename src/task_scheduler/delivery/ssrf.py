"""SSRF guard for webhook delivery: which destinations a timer may reach, enforced twice.

A service that POSTs to any URL is a relay into private networks, so every destination is
checked against an `AddressPolicy` (special-purpose networks blocked, an operator allow list
opening chosen ranges) in the two places aiohttp decides where to connect:

1. Hosts that are IP literals never reach a resolver (aiohttp connects to them directly), so
   `AddressPolicy.check_url` / `GuardedResolver.check_url` / `GuardedResolver.middleware`
   check the URL's host as yarl parsed it, in every spelling glibc's `inet_aton` accepts
   (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`, ...), plus `localhost` and `*.localhost`.
2. Every other host goes through `GuardedResolver`, which checks every address the inner
   resolver returns and refuses the lot if any one is blocked; the connector then connects to
   exactly those checked addresses, so a DNS answer cannot change between check and connect.

Lookups are asynchronous (c-ares through aiodns, reading /etc/hosts and /etc/resolv.conf): a
name whose DNS never answers holds nothing but its own query. `getaddrinfo` ran in a pool of
four threads (libuv's, under uvloop) that every lookup shared, the database's connects
included: four webhooks to a name that never answers stalled every other name's delivery for
as long as the system resolver's timeouts (10-20 s a lookup), and failed them. Localhost names
(RFC 6761) and legacy IPv4 spellings resolve to what they mean without a lookup.

`BlockedDestination` is an `aiohttp.ClientConnectionError` that is not an `OSError`, so aiohttp
lets it out of `session.request(...)` as it is (it only wraps `OSError`s): catch it before
`aiohttp.ClientError`.
"""

from __future__ import annotations

import ipaddress
import socket
import string
from collections.abc import Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Most specific first: the first match names the category in the reason.
_BLOCKED_IPV4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(cidr), category)
    for cidr, category in (
        ("0.0.0.0/32", "unspecified"),
        ("255.255.255.255/32", "broadcast"),
        ("169.254.169.254/32", "link-local: the cloud metadata service"),
        ("0.0.0.0/8", "'this network'"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared CGNAT space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved for IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_BLOCKED_IPV6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(cidr), category)
    for cidr, category in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fd00:ec2::254/128", "unique-local: the AWS metadata service"),
        ("100::/64", "discard-only"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("2001:2::/48", "benchmarking"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "for SRv6 segment identifiers"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "deprecated site-local"),
        ("ff00::/8", "multicast"),
    )
)

_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_LOOPBACK: tuple[IPAddress, ...] = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
_ASCII_DIGITS = frozenset(string.digits)
_OCTAL_DIGITS = frozenset(string.octdigits)
_HEX_DIGITS = frozenset(string.hexdigits)


# Said with every refusal: the setting that opens a blocked network (loopback for local testing).
ALLOW_NETWORKS_HINT = "the operator can allow it with SCHEDULER_WEBHOOK_ALLOWED_NETWORKS (e.g. 127.0.0.0/8)"


class BlockedDestination(aiohttp.ClientConnectionError):
    """The destination is not allowed; `reason` says why, e.g. '127.0.0.1 is loopback (127.0.0.0/8)'.

    Not an `OSError`, so aiohttp's connector does not wrap it: `session.request(...)` raises
    this very exception, whether the URL check or the resolver refused the destination.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AddressPolicy:
    """Which IP addresses a webhook may reach: special-purpose networks are blocked unless an
    operator-chosen allowed network contains the address (or the IPv4 address it embeds)."""

    def __init__(self, allowed_networks: Sequence[str] = ()) -> None:
        networks: list[IPNetwork] = []
        for text in allowed_networks:
            try:
                networks.append(ipaddress.ip_network(text.strip()))
            except ValueError as exc:
                raise ValueError(f"invalid allowed network {text!r}: {exc}") from exc
        self._allowed: tuple[IPNetwork, ...] = tuple(networks)
        self._verdicts: dict[str, str | None] = {}  # literal_host_reason of recent URL strings

    @classmethod
    def parse_allowed(cls, value: str) -> AddressPolicy:
        """A policy from a comma-separated CIDR list ("127.0.0.0/8, 10.1.0.0/16"); "" allows none."""
        return cls([part for part in value.split(",") if part.strip()])

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return self._allowed

    def blocked_reason(self, address: IPAddress) -> str | None:
        """Why `address` is blocked, or None if a webhook may connect to it."""
        if self._is_allowed(address):
            return None
        if isinstance(address, ipaddress.IPv4Address):
            return _ipv4_reason(address)
        bare = ipaddress.IPv6Address(int(address))  # without a zone id, for network matching
        for network, category in _BLOCKED_IPV6:
            if bare in network:
                return f"{address} is {category} ({network})"
        embedded = _embedded_ipv4(bare)
        for form, inner in embedded:
            if self._is_allowed(inner):
                continue
            reason = _ipv4_reason(inner)
            if reason is not None:
                return f"{address} embeds {inner} ({form}); {reason}"
        if embedded:
            return None  # the wrapper's own range is not special: the IPv4 inside decides
        if bare not in _GLOBAL_UNICAST:
            return f"{address} is outside global unicast space ({_GLOBAL_UNICAST})"
        if not bare.is_global:
            return f"{address} is not globally reachable (IANA special-purpose)"
        return None

    def host_reason(self, host: str) -> str | None:
        """Why a URL host (as aiohttp sees it: yarl's raw_host) is blocked before any DNS lookup:
        an IP literal in any spelling, or a localhost name. Other hostnames return None."""
        name = host.rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            if any(self.blocked_reason(loopback) is None for loopback in _LOOPBACK):
                return None  # loopback is allowed: the resolver checks what the name maps to
            return f"{host} is a localhost name (always loopback, RFC 6761)"
        if ":" in name:
            try:
                # aiohttp keeps the zone id percent-encoded ("fe80::1%25eth0"); it decides nothing.
                address: IPAddress = ipaddress.IPv6Address(name.partition("%")[0])
            except ValueError:
                return f"{host} is not a valid IPv6 address"
        else:
            legacy = _inet_aton(name)
            if legacy is None:
                return None
            address = legacy
        return self.blocked_reason(address)

    def fixed_answer(self, host: str, family: int = socket.AF_UNSPEC) -> list[IPAddress] | None:
        """The allowed addresses of `family` a host means without any lookup, IPv4 first, or None
        for a name DNS must answer: a localhost name (`localhost`, `*.localhost`) means loopback
        (RFC 6761), and a legacy IPv4 spelling (`0x7f000001`, `127.1`) the address glibc reads
        in it. Empty when none of them is allowed for that family."""
        name = host.rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):
            candidates: tuple[IPAddress, ...] = _LOOPBACK
        else:
            legacy = _inet_aton(name)
            if legacy is None:
                return None
            candidates = (legacy,)
        return [
            address
            for address in candidates
            if family in (socket.AF_UNSPEC, _FAMILY[address.version]) and self.blocked_reason(address) is None
        ]

    def literal_host_reason(self, url: str | URL) -> str | None:
        """For a URL whose host is an IP literal in any spelling (or localhost/*.localhost): the
        reason it is blocked, else None. Hostnames that are not IP literals return None (they are
        checked at resolution), and so do URLs yarl cannot parse (aiohttp refuses them too)."""
        if isinstance(url, str):
            # Cached per URL string: webhooks repeat their URLs, and parsing is the costly part.
            try:
                return self._verdicts[url]
            except KeyError:
                if len(self._verdicts) >= 10_000:
                    self._verdicts.clear()
                try:
                    parsed: URL | None = URL(url)
                except ValueError:
                    parsed = None
                verdict = self._verdicts[url] = self._literal_host_reason(parsed)
                return verdict
        return self._literal_host_reason(url)

    def _literal_host_reason(self, url: URL | None) -> str | None:
        host = None if url is None else url.raw_host
        return None if host is None else self.host_reason(host)

    def check_url(self, url: str | URL) -> None:
        """Raise BlockedDestination if the URL's literal host is blocked (see literal_host_reason)."""
        reason = self.literal_host_reason(url)
        if reason is not None:
            raise BlockedDestination(reason)

    def _is_allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            address = ipaddress.IPv6Address(int(address))
        return any(address in network for network in self._allowed)


class GuardedResolver(AbstractResolver):
    """Resolves with an inner resolver (default aiohttp.ThreadedResolver) and returns the answer
    only if the policy allows EVERY address in it; one blocked address raises BlockedDestination
    (a name resolving to both public and private addresses is suspicious, not half-usable).

    The connector connects to exactly the returned addresses while the Host header and TLS
    server name stay the hostname. aiohttp skips the resolver for IP-literal hosts, so pair it
    with `check_url` before each request or with `middleware` on the session. The connector
    does not close a resolver it was given: call `close()` after closing the session.
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        """`inner` None: aiohttp's AsyncResolver (c-ares), built on the first lookup."""
        self._policy = policy
        self._inner = inner

    @property
    def policy(self) -> AddressPolicy:
        return self._policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        reason = self._policy.host_reason(host)
        if reason is not None:
            raise BlockedDestination(reason)
        fixed = self._policy.fixed_answer(host, family)
        if fixed == []:
            raise BlockedDestination(f"{host} names no allowed address of the family asked for")
        if fixed is not None:
            return [
                ResolveResult(
                    hostname=host,
                    host=str(address),
                    port=port,
                    family=socket.AF_INET if address.version == 4 else socket.AF_INET6,
                    proto=0,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
                for address in fixed
            ]
        if self._inner is None:
            self._inner = aiohttp.AsyncResolver()  # needs the running loop, so built here
        results = await self._inner.resolve(host, port, family)
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"])
            except ValueError:
                raise BlockedDestination(
                    f"{host} resolves to {result['host']!r}, which is not an IP address"
                ) from None
            reason = self._policy.blocked_reason(address)
            if reason is not None:
                raise BlockedDestination(f"{host} resolves to a blocked address: {reason}")
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()

    async def check_url(self, url: str | URL) -> None:
        """Raise BlockedDestination if the URL's host is a blocked IP literal or localhost name."""
        self._policy.check_url(url)

    async def middleware(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """A client middleware (`ClientSession(middlewares=(resolver.middleware,))`) that runs
        `check_url` on every request the session sends, redirects included."""
        self._policy.check_url(request.url)
        return await handler(request)


def _ipv4_reason(address: ipaddress.IPv4Address) -> str | None:
    for network, category in _BLOCKED_IPV4:
        if address in network:
            return f"{address} is {category} ({network})"
    if not address.is_global:
        return f"{address} is not globally reachable (IANA special-purpose)"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, named by form; a packet may end up there."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return [("IPv4-mapped", address.ipv4_mapped)]
    if address in _IPV4_COMPATIBLE:
        return [("IPv4-compatible", low32)]
    if address in _NAT64:
        return [("NAT64", low32)]
    if address.sixtofour is not None:
        return [("6to4", address.sixtofour)]
    if address.teredo is not None:
        server, client = address.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    return []


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address glibc's inet_aton (and so getaddrinfo) reads in `host`, or None.

    One to four dot-separated numbers, each decimal, octal (leading 0) or hex (0x); the last
    fills the remaining bytes: "2130706433", "0x7f.1", "0177.0.0.1" and "127.1" are 127.0.0.1.
    """
    parts = host.split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            digits, base, alphabet = part[2:], 16, _HEX_DIGITS
        elif len(part) > 1 and part[0] == "0":
            digits, base, alphabet = part[1:], 8, _OCTAL_DIGITS
        else:
            digits, base, alphabet = part, 10, _ASCII_DIGITS
        if not digits or not set(digits) <= alphabet:
            return None
        values.append(int(digits, base))
    *leading, last = values
    if any(value > 0xFF for value in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)
