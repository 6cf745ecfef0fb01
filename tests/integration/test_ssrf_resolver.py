"""SSRF guard end to end, through a real aiohttp ClientSession and a real server on loopback.

Every spelling of a loopback destination is refused before any connection is made, either by
the URL check (IP literals, which aiohttp connects to without asking the resolver) or by
GuardedResolver (names, and the hex spellings getaddrinfo reads as addresses); the server then
receives nothing. An allow list opens loopback again. Only 127.0.0.1 and ::1 ever see traffic:
the fake DNS answers only with loopback addresses, so even a broken guard cannot reach further
(answers mixing public and private addresses are covered in tests/unit/test_ssrf.py)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from task_scheduler.delivery.ssrf import AddressPolicy, BlockedDestination, GuardedResolver
from tests.support.dns import StaticDNS

FULLWIDTH_LOOPBACK = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"  # yarl folds it to 127.0.0.1

# Hosts (as written in the URL) that all mean the server on 127.0.0.1.
LOOPBACK_SPELLINGS = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "017700000001",
    "127.1",
    "127.0.1",
    "127.0.0.1.",
    "[::ffff:127.0.0.1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "example.com@127.0.0.1",
    FULLWIDTH_LOOPBACK,
]


@dataclass
class LoopbackServer:
    """A real HTTP server on a loopback address that records every request it receives."""

    host: str
    port: int = 0
    received: list[tuple[str, str]] = field(default_factory=list)  # (Host header, path)

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received.append((request.headers.get("Host", ""), request.path))
        if location := request.query.get("redirect"):
            raise web.HTTPFound(location)
        return web.Response(text="ok")


@asynccontextmanager
async def serving(host: str) -> AsyncIterator[LoopbackServer]:
    server = LoopbackServer(host)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        try:
            await site.start()
        except OSError as exc:
            pytest.skip(f"cannot listen on {host}: {exc}")
        server.port = runner.addresses[0][1]
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    async with serving("127.0.0.1") as running:
        yield running


@asynccontextmanager
async def guarded_session(
    policy: AddressPolicy, *, inner: AbstractResolver | None = None, middleware: bool = False
) -> AsyncIterator[tuple[aiohttp.ClientSession, GuardedResolver]]:
    """A session set up like the webhook client's (DNS cache on, no proxies from the env)."""
    resolver = GuardedResolver(policy, inner)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver, ttl_dns_cache=60),
        trust_env=False,
        middlewares=(resolver.middleware,) if middleware else (),
    )
    try:
        yield session, resolver
    finally:
        await session.close()
        await resolver.close()  # the connector does not close a resolver it was given


async def post(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url, data=b"{}", allow_redirects=False) as response:
        return response.status


async def checked_post(session: aiohttp.ClientSession, resolver: GuardedResolver, url: str) -> int:
    """The caller's pattern: check the URL's literal host, then send."""
    await resolver.check_url(url)
    return await post(session, url)


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_every_loopback_spelling_is_refused_and_nothing_arrives(
    server: LoopbackServer, host: str
) -> None:
    url = f"http://{host}:{server.port}/hook"
    async with guarded_session(AddressPolicy()) as (session, resolver):
        with pytest.raises(BlockedDestination) as caught:
            await checked_post(session, resolver, url)
    assert "loopback" in caught.value.reason
    assert server.received == []


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_the_middleware_refuses_every_loopback_spelling_on_its_own(
    server: LoopbackServer, host: str
) -> None:
    async with guarded_session(AddressPolicy(), middleware=True) as (session, _resolver):
        with pytest.raises(BlockedDestination, match="loopback"):
            await post(session, f"http://{host}:{server.port}/hook")
    assert server.received == []


async def test_the_middleware_checks_every_redirect_hop(server: LoopbackServer) -> None:
    # 127.0.0.2 is loopback too, so even a broken guard would not leave the machine.
    hop = f"http://127.0.0.2:{server.port}/second"
    policy = AddressPolicy(["127.0.0.1/32"])
    async with guarded_session(policy, middleware=True) as (session, _resolver):
        url = f"http://127.0.0.1:{server.port}/first?redirect={hop}"
        with pytest.raises(BlockedDestination, match=r"127\.0\.0\.2 is loopback"):
            async with session.get(url, allow_redirects=True):
                pass
    assert [path for _host, path in server.received] == ["/first"]


# What each spelling meets when the caller skips the URL check: the two layers are complementary.
WITHOUT_URL_CHECK = [
    ("localhost", "resolver"),
    ("0x7f000001", "resolver"),  # not all digits: aiohttp asks the resolver (glibc reads hex)
    ("0x7f.0.0.1", "resolver"),
    ("2130706433", "aiohttp"),  # all digits and dots: aiohttp 3.14 refuses non-canonical IPv4
    ("127.1", "aiohttp"),
    ("0177.0.0.1", "aiohttp"),
    ("127.0.0.1.", "aiohttp"),
    ("127.0.0.1", "connects"),  # IP literals bypass the resolver: hence check_url
    ("[::ffff:127.0.0.1]", "connects"),
    (FULLWIDTH_LOOPBACK, "connects"),
]


@pytest.mark.parametrize(("host", "outcome"), WITHOUT_URL_CHECK)
async def test_without_the_url_check_ip_literals_bypass_the_resolver(
    server: LoopbackServer, host: str, outcome: str
) -> None:
    url = f"http://{host}:{server.port}/hook"
    async with guarded_session(AddressPolicy()) as (session, _resolver):
        if outcome == "resolver":
            with pytest.raises(BlockedDestination, match="loopback"):
                await post(session, url)
        elif outcome == "aiohttp":
            with pytest.raises(aiohttp.InvalidUrlClientError, match="not a canonical IPv4"):
                await post(session, url)
        else:
            assert await post(session, url) == 200
    assert len(server.received) == (1 if outcome == "connects" else 0)


async def test_glibc_getaddrinfo_reads_hex_hosts_as_loopback() -> None:
    # Why the resolver must check its answers: the system resolver turns a "name" into 127.0.0.1.
    try:
        results = await aiohttp.ThreadedResolver().resolve("0x7f000001", 80)
    except OSError:
        pytest.skip("this platform's getaddrinfo does not read hex IPv4 spellings")
    assert {r["host"] for r in results} == {"127.0.0.1"}
    reason = AddressPolicy().blocked_reason(ipaddress.ip_address(results[0]["host"]))
    assert reason == "127.0.0.1 is loopback (127.0.0.0/8)"


@pytest.mark.parametrize("host", ["127.0.0.1", "0x7f000001", "[::ffff:127.0.0.1]", FULLWIDTH_LOOPBACK])
async def test_an_allowed_loopback_network_opens_loopback_again(server: LoopbackServer, host: str) -> None:
    async with guarded_session(AddressPolicy(["127.0.0.0/8"])) as (session, resolver):
        assert await checked_post(session, resolver, f"http://{host}:{server.port}/hook") == 200
    assert len(server.received) == 1


async def test_an_allowed_loopback_network_opens_localhost_again(server: LoopbackServer) -> None:
    # /etc/hosts may map localhost to ::1 as well, and every address must pass: allow both.
    policy = AddressPolicy.parse_allowed("127.0.0.0/8,::1/128")
    async with guarded_session(policy, middleware=True) as (session, resolver):
        assert await checked_post(session, resolver, f"http://localhost:{server.port}/hook") == 200
    assert server.received == [(f"localhost:{server.port}", "/hook")]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (["127.0.0.1"], "rebind.example resolves to a blocked address: 127.0.0.1 is loopback"),
        (["127.0.0.2", "127.0.0.1"], "127.0.0.2 is loopback"),
        (["::ffff:127.0.0.1"], "embeds 127.0.0.1 (IPv4-mapped)"),
    ],
)
async def test_a_name_whose_dns_answer_points_inside_is_refused(
    server: LoopbackServer, answer: list[str], words: str
) -> None:
    dns = StaticDNS({"rebind.example": answer})
    async with guarded_session(AddressPolicy(), inner=dns) as (session, resolver):
        with pytest.raises(BlockedDestination) as caught:
            await checked_post(session, resolver, f"http://rebind.example:{server.port}/hook")
    # The caller sees the resolver's exception itself, not aiohttp's DNS error wrapping it.
    assert type(caught.value) is BlockedDestination
    assert words in caught.value.reason
    assert dns.lookups == ["rebind.example"]
    assert server.received == []


async def test_concurrent_requests_for_a_blocked_name_all_see_blocked_destination(
    server: LoopbackServer,
) -> None:
    # aiohttp shares one in-flight lookup between waiters; each must get the refusal.
    dns = StaticDNS({"rebind.example": ["127.0.0.1"]}, delay=0.05)
    url = f"http://rebind.example:{server.port}/hook"
    async with guarded_session(AddressPolicy(), inner=dns) as (session, _resolver):
        outcomes = await asyncio.gather(*(post(session, url) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(outcome, BlockedDestination) for outcome in outcomes), outcomes
        # A refusal is not cached: the next request asks the DNS again and is refused again.
        lookups_before = len(dns.lookups)
        with pytest.raises(BlockedDestination):
            await post(session, url)
        assert len(dns.lookups) == lookups_before + 1
    assert server.received == []


async def test_an_allowed_name_connects_to_the_checked_address_under_its_own_name(
    server: LoopbackServer,
) -> None:
    # Pinning: the connection goes to the address the policy saw; Host stays the hostname.
    dns = StaticDNS({"hooks.example": ["127.0.0.1"]})
    async with guarded_session(AddressPolicy(["127.0.0.0/8"]), inner=dns) as (session, resolver):
        assert await checked_post(session, resolver, f"http://hooks.example:{server.port}/hook") == 200
    assert server.received == [(f"hooks.example:{server.port}", "/hook")]


async def test_ipv6_loopback_is_refused_unless_allowed() -> None:
    async with serving("::1") as server_v6:
        url = f"http://[::1]:{server_v6.port}/hook"
        async with guarded_session(AddressPolicy()) as (session, resolver):
            with pytest.raises(BlockedDestination, match=r"::1 is loopback"):
                await checked_post(session, resolver, url)
        assert server_v6.received == []
        async with guarded_session(AddressPolicy(["::1/128"])) as (session, resolver):
            assert await checked_post(session, resolver, url) == 200
        assert len(server_v6.received) == 1
