"""SSRF policy in the running service: blocked at creation for literal addresses, and at every
attempt after resolution (a name that resolves to a private address), never retried."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

import pytest

from task_scheduler.app import create_app
from task_scheduler.config import Settings
from tests.support.app import running_app
from tests.support.polling import wait_for_status
from tests.support.receiver import Receiver


def loopback_hostname() -> str:
    """This machine's own name, when it resolves only to loopback (as on Debian)."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"{name} does not resolve")
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        pytest.skip(f"{name} does not resolve to loopback only: {addresses}")
    return name


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://0x7f000001/hook", "loopback"),
        ("http://localhost:9000/", "localhost"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.8/internal", "private"),
        ("http://[::ffff:192.168.1.1]/", "private"),
    ],
)
async def test_literal_internal_addresses_are_refused_at_creation(
    make_settings: Callable[..., Settings], url: str, reason: str
) -> None:
    settings = make_settings(webhook_allowed_networks="")
    async with running_app(create_app(settings, run_dispatcher=False)) as client:
        response = await client.post("/timer", json={"seconds": 1, "url": url})
        batch = await client.post(
            "/timers/batch", json={"timers": [{"url": "http://example.com/"}, {"url": url}]}
        )
        listed = (await client.get("/timers")).json()["timers"]
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "url"
    assert "blocked destination" in error["message"]
    assert reason in error["message"]
    assert "SCHEDULER_WEBHOOK_ALLOWED_NETWORKS" in error["message"]  # the setting that opens it
    assert batch.status_code == 422
    assert batch.json()["error"]["field"] == "timers.1.url"
    assert listed == []


async def test_a_name_resolving_to_loopback_fails_at_delivery_without_retries(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    name = loopback_hostname()
    settings = make_settings(webhook_allowed_networks="", max_attempts=5)
    async with running_app(create_app(settings)) as client:
        created = await client.post(
            "/timer", json={"seconds": 0, "url": f"http://{name}:{receiver.port}/hook"}
        )
        assert created.status_code == 201
        timer_id = created.json()["timer_id"]
        view = await wait_for_status(client, timer_id, "failed", 20.0)
        attempts = (await client.get(f"/timer/{timer_id}/attempts")).json()["attempts"]
    assert view["status"] == "failed"
    assert view["attempts"] == 1  # not retried
    assert "blocked destination" in view["last_error"]
    assert attempts[0]["error_class"] == "blocked_destination"
    assert receiver.deliveries == []  # nothing reached the receiver


async def test_allowed_networks_open_a_range(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = make_settings(webhook_allowed_networks="127.0.0.0/8")
    async with running_app(create_app(settings)) as client:
        created = await client.post("/timer", json={"seconds": 0, "url": receiver.url})
        view = await wait_for_status(client, created.json()["timer_id"], "delivered", 20.0)
        private = await client.post("/timer", json={"seconds": 0, "url": "http://10.0.0.8/"})
    assert view["status"] == "delivered"
    assert private.status_code == 422


def test_a_bad_allowed_network_refuses_to_start(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match=re.escape("10.0.0.0/33")):
        make_settings(webhook_allowed_networks="127.0.0.0/8, 10.0.0.0/33")


async def test_egress_proxy_carries_the_webhooks(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    """With SCHEDULER_WEBHOOK_PROXY, requests go to the proxy (here: the receiver plays the proxy
    and sees the absolute target URL), after the target was checked."""
    settings = make_settings(
        webhook_proxy=receiver.url.rsplit("/", 1)[0], webhook_allowed_networks="127.0.0.0/8"
    )
    async with running_app(create_app(settings)) as client:
        created = await client.post("/timer", json={"seconds": 0, "url": "http://127.0.0.2:9/target"})
        await receiver.wait_for(lambda: len(receiver.deliveries) >= 1, 20.0)
    assert created.status_code == 201
    assert receiver.deliveries
    assert receiver.deliveries[0].path == "/target"


def test_proxy_must_be_a_url(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="SCHEDULER_WEBHOOK_PROXY"):
        make_settings(webhook_proxy="socks5://x")
