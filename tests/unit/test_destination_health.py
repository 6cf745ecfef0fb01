"""A destination's hosts in the rollups and its figures from them (destinations/health.py)."""

from __future__ import annotations

import pytest

from task_scheduler.destinations.health import health_of
from task_scheduler.destinations.keys import rollup_hosts
from task_scheduler.destinations.repository import HostMinute


@pytest.mark.parametrize(
    ("key", "hosts"),
    [
        ("http://127.0.0.1:8123", ("127.0.0.1:8123",)),
        ("https://API.example.com:443", ("api.example.com:443", "api.example.com")),
        ("http://example.com:80", ("example.com:80", "example.com")),
        ("http://example.com:443", ("example.com:443",)),
        ("http://[::1]:8080", ("[::1]:8080",)),
        ("payments", ()),
        ("http://example.com", ()),
        ("ftp://example.com:21", ()),
        ("http://user@example.com:80", ()),
        ("http://example.com:80/path", ()),
    ],
)
def test_the_hosts_of_a_key(key: str, hosts: tuple[str, ...]) -> None:
    assert rollup_hosts(key) == hosts


def test_figures_add_up_the_keys_hosts_only() -> None:
    empty = [0] * 10
    rows = [
        HostMinute("example.com", True, 6, [0, 6, *empty[2:]]),
        HostMinute("example.com:443", False, 2, [0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
        HostMinute("example.com:443", True, 2, [0, 2, *empty[2:]]),
        HostMinute("other.example.com", True, 50, [50, *empty[1:]]),
    ]
    health = health_of("https://example.com:443", rows)
    assert health is not None
    assert (health.attempts, health.succeeded, health.success_rate) == (10, 8, 0.8)
    assert health.p50_ms == pytest.approx(10 + 40 * 5 / 8)  # rank 5 of the 8 in bucket [10, 50)
    assert health.p99_ms == 10000.0  # the open last bucket: its lower edge
    assert health.hosts == ["example.com:443", "example.com"]
    assert health_of("payments", rows) is None
    quiet = health_of("https://quiet.example.com:443", rows)
    assert quiet is not None
    assert (quiet.attempts, quiet.success_rate, quiet.p50_ms, quiet.p99_ms) == (0, None, None, None)
