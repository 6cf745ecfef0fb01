"""SSRF policy: which addresses and URL host spellings a webhook may reach.

The address tables follow Svix's webhook client test (svix-webhooks, webhook_http_client.rs
`is_allowed_test`, itself taken from Rust's `is_global` docs), widened to every special-purpose
range and every IPv6 form that carries an IPv4 address."""

from __future__ import annotations

import ipaddress
import re
import socket

import aiohttp
import pytest

from task_scheduler.delivery.ssrf import AddressPolicy, BlockedDestination, GuardedResolver
from tests.support.dns import StaticDNS

DEFAULT = AddressPolicy()

# (address, words the reason must contain: the category, and for IPv6 wrappers the IPv4 inside)
BLOCKED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fd00:ec2::254", "AWS metadata"),
    ("fc00::1", "unique-local"),
    ("fd12:3456:789a::1", "unique-local"),
    ("fec0::1", "site-local"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "'this network'"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("250.10.20.30", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("2001:2::1", "benchmarking"),
    ("192.0.0.1", "IETF protocol assignments"),
    ("192.0.0.170", "IETF protocol assignments"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("100::1", "discard-only"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("5f00::1", "SRv6"),
    ("4000::1", "outside global unicast"),
    ("2001:10::1", "not globally reachable"),  # ORCHID: only the is_global extra knows it
    # IPv6 forms carrying an IPv4 address are judged by that address.
    ("::ffff:127.0.0.1", "127.0.0.1 (IPv4-mapped); 127.0.0.1 is loopback"),
    ("::ffff:169.254.169.254", "169.254.169.254 (IPv4-mapped); 169.254.169.254 is link-local"),
    ("::ffff:10.0.0.1", "10.0.0.1 (IPv4-mapped); 10.0.0.1 is private"),
    ("::ffff:0.0.0.0", "0.0.0.0 (IPv4-mapped); 0.0.0.0 is unspecified"),
    ("::127.0.0.1", "127.0.0.1 (IPv4-compatible)"),
    ("::10.1.2.3", "10.1.2.3 (IPv4-compatible)"),
    ("2002:7f00:1::", "127.0.0.1 (6to4)"),
    ("2002:a9fe:a9fe::1", "169.254.169.254 (6to4)"),
    ("2002:c0a8:101::", "192.168.1.1 (6to4)"),
    ("64:ff9b::7f00:1", "127.0.0.1 (NAT64)"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254 (NAT64)"),
    ("64:ff9b::10.0.0.1", "10.0.0.1 (NAT64)"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1 (Teredo client)"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1 (Teredo client)"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "169.254.169.254 (Teredo client)"),
    ("2001:0:a00:1:8000:63bf:f7f7:fbfb", "10.0.0.1 (Teredo server)"),
]

ALLOWED_ADDRESSES = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "11.0.0.1",  # just past 10/8
    "172.32.0.1",  # just past 172.16/12
    "100.128.0.1",  # just past 100.64/10
    "192.169.0.1",  # just past 192.168/16
    "198.20.0.1",  # just past 198.18/15
    "223.255.255.254",  # just below multicast
    "2606:2800:220:1::",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "64:ff9b::1.1.1.1",
    "2001:0:4136:e378:8000:63bf:f7f7:fbfb",  # Teredo: public server, client 8.8.4.4
]

# (url, words the reason must contain): every spelling of a blocked host the HTTP client accepts.
BLOCKED_URLS = [
    ("http://127.0.0.1/", "127.0.0.1 is loopback"),
    ("http://2130706433/", "127.0.0.1 is loopback"),  # decimal
    ("http://0x7f000001/", "127.0.0.1 is loopback"),  # hex
    ("http://0X7F000001/", "127.0.0.1 is loopback"),  # uppercase hex
    ("http://0x7f.0.0.1/", "127.0.0.1 is loopback"),
    ("http://0x7f.1/", "127.0.0.1 is loopback"),
    ("http://0177.0.0.1/", "127.0.0.1 is loopback"),  # octal
    ("http://017700000001/", "127.0.0.1 is loopback"),
    ("http://127.000.000.001/", "127.0.0.1 is loopback"),
    ("http://127.1/", "127.0.0.1 is loopback"),  # shortened
    ("http://127.0.1/", "127.0.0.1 is loopback"),
    ("http://127.0.0.1./", "127.0.0.1 is loopback"),  # trailing dot
    ("http://127.0.0.1:8080/hook?x=1", "127.0.0.1 is loopback"),
    ("http://example.com@127.0.0.1/", "127.0.0.1 is loopback"),  # userinfo
    ("http://user:pass@10.0.0.1:8080/", "10.0.0.1 is private"),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "127.0.0.1 is loopback"),  # fullwidth digits
    ("http://127\u30020\u30020\u30021/", "127.0.0.1 is loopback"),  # ideographic full stops
    ("http://0/", "0.0.0.0 is unspecified"),
    ("http://0.0.0.0:9000/", "0.0.0.0 is unspecified"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://2852039166/", "169.254.169.254 is link-local"),
    ("http://0xa9fea9fe/", "169.254.169.254 is link-local"),
    ("http://0251.0376.0251.0376/", "169.254.169.254 is link-local"),
    ("http://[::1]/", "::1 is loopback"),
    ("http://[::]/", ":: is unspecified"),
    ("http://[::ffff:127.0.0.1]/", "127.0.0.1 (IPv4-mapped)"),
    ("http://[0:0:0:0:0:ffff:7f00:1]/", "127.0.0.1 (IPv4-mapped)"),
    ("http://[::FFFF:7F00:1]:8080/", "127.0.0.1 (IPv4-mapped)"),
    ("https://[::ffff:a9fe:a9fe]/", "169.254.169.254 (IPv4-mapped)"),
    ("http://[fe80::1%25eth0]/", "link-local"),  # zone id
    ("http://[fd00:ec2::254]/", "AWS metadata"),
    ("http://[2002:7f00:1::]/", "127.0.0.1 (6to4)"),
    ("http://[64:ff9b::a9fe:a9fe]/", "169.254.169.254 (NAT64)"),
    ("http://localhost/", "localhost name"),
    ("http://LOCALHOST:8080/", "localhost name"),
    ("http://localhost./", "localhost name"),
    ("http://api.localhost/", "localhost name"),
    ("https://a.b.LocalHost./hook", "localhost name"),
]

# Not blocked by the URL check: public literals, and names left to the resolver.
PASSING_URLS = [
    "https://example.com/hook",
    "http://93.184.216.34/",
    "https://8.8.8.8:8443/",
    "http://0x08080808/",  # 8.8.8.8 in hex
    "http://[2606:2800:220:1::]/",
    "http://[::ffff:8.8.8.8]/",
    "http://127.0.0.1.nip.io/",  # a name: its addresses are checked at resolution
    "http://localhost.example.com/",
    "http://mylocalhost/",
    "http://%31%32%37.0.0.1/",  # percent-encoded: not an IP literal to yarl or aiohttp
    "http://xn--nxasmq6b.example/",
    "http://[invalid/",  # yarl refuses it, and so does aiohttp
]


@pytest.mark.parametrize(("address", "words"), BLOCKED_ADDRESSES)
def test_special_purpose_addresses_are_blocked(address: str, words: str) -> None:
    reason = DEFAULT.blocked_reason(ipaddress.ip_address(address))
    assert reason is not None
    assert words in reason
    assert reason.startswith(str(ipaddress.ip_address(address)))


@pytest.mark.parametrize("address", ALLOWED_ADDRESSES)
def test_public_addresses_pass(address: str) -> None:
    assert DEFAULT.blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("url", "words"), BLOCKED_URLS)
def test_every_spelling_of_a_blocked_host_is_refused(url: str, words: str) -> None:
    reason = DEFAULT.literal_host_reason(url)
    assert reason is not None
    assert words in reason
    with pytest.raises(BlockedDestination):
        DEFAULT.check_url(url)


@pytest.mark.parametrize("url", PASSING_URLS)
def test_public_literals_and_hostnames_pass_the_url_check(url: str) -> None:
    assert DEFAULT.literal_host_reason(url) is None
    DEFAULT.check_url(url)


def test_the_tables_cover_at_least_thirty_blocked_and_eight_allowed_cases() -> None:
    assert len(BLOCKED_ADDRESSES) + len(BLOCKED_URLS) >= 30
    assert len(ALLOWED_ADDRESSES) + len(PASSING_URLS) >= 8


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0X7F.0.0.1", "0177.0.0.1", "017700000001", "127.1", "127.0.1",
     "0x7f.1", "0251.0376.0251.0376", "10.0x10.4", "0", "0x0", "192.168.0x1.01"],
)  # fmt: skip
def test_legacy_ipv4_spellings_mean_what_glibc_inet_aton_says(host: str) -> None:
    expected = ipaddress.IPv4Address(socket.inet_aton(host))
    reason = DEFAULT.host_reason(host)
    assert reason is not None
    assert reason.startswith(f"{expected} is ")


@pytest.mark.parametrize(
    "host", ["08.0.0.1", "0x", "1.2.3.4.5", "4294967296", "256.0.0.1", "1.16777216", "1..2", "0x1g"]
)
def test_numbers_inet_aton_refuses_are_not_literals(host: str) -> None:
    with pytest.raises(OSError, match="illegal"):
        socket.inet_aton(host)
    assert DEFAULT.host_reason(host) is None


def test_reasons_name_the_address_and_the_category() -> None:
    assert DEFAULT.blocked_reason(ipaddress.ip_address("127.0.0.1")) == (
        "127.0.0.1 is loopback (127.0.0.0/8)"
    )
    assert DEFAULT.blocked_reason(ipaddress.ip_address("169.254.169.254")) == (
        "169.254.169.254 is link-local: the cloud metadata service (169.254.169.254/32)"
    )
    assert DEFAULT.blocked_reason(ipaddress.ip_address("2002:7f00:1::")) == (
        "2002:7f00:1:: embeds 127.0.0.1 (6to4); 127.0.0.1 is loopback (127.0.0.0/8)"
    )
    assert DEFAULT.literal_host_reason("http://api.localhost/") == (
        "api.localhost is a localhost name (always loopback, RFC 6761)"
    )


def test_blocked_destination_carries_its_reason_and_is_a_non_os_client_error() -> None:
    with pytest.raises(BlockedDestination) as caught:
        DEFAULT.check_url("http://10.0.0.1/")
    assert caught.value.reason == "10.0.0.1 is private (10.0.0.0/8)"
    assert str(caught.value) == caught.value.reason
    # aiohttp wraps OSErrors raised by a resolver; this one passes through untouched.
    assert isinstance(caught.value, aiohttp.ClientConnectionError)
    assert not isinstance(caught.value, OSError)


# --- the allow list ---


def test_an_allowed_network_opens_its_addresses_and_their_ipv6_wrappers() -> None:
    policy = AddressPolicy(["127.0.0.0/8"])
    for address in ["127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::7f00:1"]:
        assert policy.blocked_reason(ipaddress.ip_address(address)) is None, address
    for address in ["10.0.0.1", "::1", "169.254.169.254", "::ffff:10.0.0.1"]:
        assert policy.blocked_reason(ipaddress.ip_address(address)) is not None, address
    assert policy.literal_host_reason("http://2130706433:8080/") is None
    assert policy.literal_host_reason("http://[::ffff:127.0.0.1]/") is None
    assert policy.literal_host_reason("http://localhost/") is None  # left to the resolver
    assert policy.literal_host_reason("http://10.0.0.1/") == "10.0.0.1 is private (10.0.0.0/8)"


def test_an_allowed_ipv6_network_opens_the_ipv6_address_itself() -> None:
    assert AddressPolicy(["fd00::/8"]).blocked_reason(ipaddress.ip_address("fd00:ec2::254")) is None
    mapped = AddressPolicy(["::ffff:0:0/96"])
    assert mapped.blocked_reason(ipaddress.ip_address("::ffff:169.254.169.254")) is None
    assert AddressPolicy(["fe80::/10"]).blocked_reason(ipaddress.ip_address("fe80::1%eth0")) is None


def test_every_ipv4_inside_a_teredo_address_must_pass() -> None:
    # Teredo server 10.0.0.1, client 127.0.0.1: allowing the client alone is not enough.
    address = ipaddress.ip_address("2001:0:a00:1:8000:63bf:80ff:fffe")
    reason = AddressPolicy(["127.0.0.0/8"]).blocked_reason(address)
    assert reason is not None
    assert "10.0.0.1 (Teredo server)" in reason
    assert AddressPolicy(["127.0.0.0/8", "10.0.0.0/8"]).blocked_reason(address) is None


def test_an_allowed_subnet_opens_only_itself() -> None:
    policy = AddressPolicy.parse_allowed("10.1.0.0/16")
    assert policy.blocked_reason(ipaddress.ip_address("10.1.2.3")) is None
    assert policy.blocked_reason(ipaddress.ip_address("10.2.0.1")) is not None


def test_parse_allowed_reads_a_comma_separated_list() -> None:
    policy = AddressPolicy.parse_allowed(" 127.0.0.0/8, 10.1.0.0/16 ,::1 ")
    assert [str(network) for network in policy.allowed_networks] == [
        "127.0.0.0/8",
        "10.1.0.0/16",
        "::1/128",
    ]
    assert AddressPolicy.parse_allowed("").allowed_networks == ()
    assert AddressPolicy.parse_allowed(" , ").allowed_networks == ()


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "nonsense", "10.1.2.3/16", "::1/129", "300.0.0.0/8"])
def test_an_invalid_allowed_network_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid allowed network '{bad}'")):
        AddressPolicy(["127.0.0.0/8", bad])
    with pytest.raises(ValueError, match=re.escape(f"invalid allowed network '{bad}'")):
        AddressPolicy.parse_allowed(f"127.0.0.0/8,{bad}")


# --- the resolver, against a static DNS (a test double of the outside world) ---


async def test_resolver_returns_an_answer_whose_every_address_passes() -> None:
    dns = StaticDNS({"hooks.example": ["93.184.216.34", "2606:2800:220:1::"]})
    resolver = GuardedResolver(AddressPolicy(), dns)
    results = await resolver.resolve("hooks.example", 443, socket.AF_UNSPEC)
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:2800:220:1::"]
    assert all(r["port"] == 443 for r in results)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (["127.0.0.1"], "rebind.example resolves to a blocked address: 127.0.0.1 is loopback"),
        (["93.184.216.34", "10.0.0.7"], "10.0.0.7 is private"),  # one bad address spoils all
        (["2606:2800:220:1::", "::ffff:169.254.169.254"], "169.254.169.254 (IPv4-mapped)"),
        (["fe80::1%eth0"], "fe80::1%eth0 is link-local"),
        (["not-an-address"], "not an IP address"),
    ],
)
async def test_resolver_refuses_an_answer_with_any_blocked_address(answer: list[str], words: str) -> None:
    resolver = GuardedResolver(AddressPolicy(), StaticDNS({"rebind.example": answer}))
    with pytest.raises(BlockedDestination) as caught:
        await resolver.resolve("rebind.example", 80)
    assert words in caught.value.reason


async def test_resolver_refuses_localhost_names_and_literals_without_a_lookup() -> None:
    dns = StaticDNS({"localhost": ["127.0.0.1"]})
    resolver = GuardedResolver(AddressPolicy(), dns)
    for host in ["localhost", "api.localhost.", "0x7f000001", "2130706433"]:
        with pytest.raises(BlockedDestination):
            await resolver.resolve(host, 80)
    assert dns.lookups == []


@pytest.mark.parametrize(
    ("allowed", "family", "addresses"),
    [
        (["127.0.0.0/8"], socket.AF_UNSPEC, ["127.0.0.1"]),
        (["127.0.0.0/8"], socket.AF_INET, ["127.0.0.1"]),
        (["::1/128"], socket.AF_UNSPEC, ["::1"]),
        (["127.0.0.0/8", "::1/128"], socket.AF_UNSPEC, ["127.0.0.1", "::1"]),
        (["127.0.0.0/8", "::1/128"], socket.AF_INET6, ["::1"]),
    ],
)
async def test_with_loopback_allowed_localhost_means_the_allowed_loopback_without_a_lookup(
    allowed: list[str], family: socket.AddressFamily, addresses: list[str]
) -> None:
    # RFC 6761: whatever a DNS server or /etc/hosts says (c-ares answers ::1 too, glibc may not).
    dns = StaticDNS({"localhost": ["10.0.0.1", "::1"], "api.localhost": ["10.0.0.1"]})
    resolver = GuardedResolver(AddressPolicy(allowed), dns)
    for host in ["localhost", "api.localhost", "LOCALHOST."]:
        results = await resolver.resolve(host, 8080, family)
        assert [r["host"] for r in results] == addresses
        assert {r["port"] for r in results} == {8080}
        assert [r["family"] for r in results] == [
            socket.AF_INET6 if ":" in address else socket.AF_INET for address in addresses
        ]
    assert dns.lookups == []


async def test_an_allowed_legacy_ipv4_spelling_means_its_address_without_a_lookup() -> None:
    dns = StaticDNS({"0x7f000001": ["10.0.0.1"]})
    resolver = GuardedResolver(AddressPolicy(["127.0.0.0/8"]), dns)
    for host in ["0x7f000001", "2130706433", "127.1", "0177.0.0.1"]:
        assert [r["host"] for r in await resolver.resolve(host, 80, socket.AF_UNSPEC)] == ["127.0.0.1"]
    with pytest.raises(BlockedDestination, match="no allowed address of the family"):
        await resolver.resolve("0x7f000001", 80, socket.AF_INET6)
    assert dns.lookups == []


async def test_resolver_passes_lookup_failures_through_and_closes_its_inner_resolver() -> None:
    dns = StaticDNS({})
    resolver = GuardedResolver(AddressPolicy(), dns)
    assert resolver.policy.allowed_networks == ()
    with pytest.raises(OSError, match="not known"):
        await resolver.resolve("nowhere.example", 80)
    await resolver.close()
    assert dns.closed


async def test_url_check_on_the_resolver_refuses_literal_hosts() -> None:
    resolver = GuardedResolver(AddressPolicy())
    with pytest.raises(BlockedDestination, match=r"127\.0\.0\.1 is loopback"):
        await resolver.check_url("http://0x7f.1:8080/hook")
    await resolver.check_url("https://example.com/hook")
    await resolver.close()  # no inner resolver was built: nothing to close
