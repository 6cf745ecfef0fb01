"""API keys, roles, tenants, protected mode, limits and hygiene, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from task_scheduler.app import create_app
from task_scheduler.auth.service import PROTECTED_MODE_MESSAGE
from task_scheduler.cli import main
from task_scheduler.config import Settings
from task_scheduler.db import asyncpg_dsn
from task_scheduler.delivery.signing import MAX_ACTIVE_SECRETS, generate_secret
from tests.support.keys import ADMIN_KEY, bearer, make_key
from tests.support.receiver import Receiver

URL = "http://example.com/hook"


@asynccontextmanager
async def serving(app: FastAPI, client_host: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, called as if from `client_host`."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_host, 40000), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
def secured(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """An app with a bootstrap admin key, no key caching (revocations take effect at once)."""

    def start(**overrides: Any) -> Any:
        values = {"admin_api_key": ADMIN_KEY, "api_key_cache_seconds": 0, **overrides}
        return serving(create_app(make_settings(**values), run_dispatcher=False))

    return start


# -- protected mode ----------------------------------------------------------------------------


async def test_protected_mode_serves_loopback_without_a_key(make_settings: Callable[..., Settings]) -> None:
    async with serving(create_app(make_settings(), run_dispatcher=False)) as client:
        created = await client.post("/timer", json={"seconds": 5, "url": URL})
    assert created.status_code == 201


@pytest.mark.parametrize("host", ["203.0.113.5", "10.0.0.7", "::ffff:8.8.8.8"])
async def test_protected_mode_refuses_other_clients(
    make_settings: Callable[..., Settings], host: str
) -> None:
    async with serving(create_app(make_settings(), run_dispatcher=False), client_host=host) as client:
        response = await client.post("/timer", json={"seconds": 5, "url": URL})
    assert response.status_code == 401
    assert response.json()["error"]["message"] == PROTECTED_MODE_MESSAGE
    assert response.headers["www-authenticate"] == "Bearer"


async def test_once_a_key_exists_loopback_needs_one_too(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        anonymous = await client.get("/timers")
        with_key = await client.get("/timers", headers=bearer(ADMIN_KEY))
        with_header = await client.get("/timers", headers={"X-API-Key": ADMIN_KEY})
        wrong = await client.get("/timers", headers=bearer(ADMIN_KEY + "x"))
        garbage = await client.get("/timers", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        health = await client.get("/healthz")
    assert anonymous.status_code == 401
    assert "missing API key" in anonymous.json()["error"]["message"]
    assert with_key.status_code == 200
    assert with_header.status_code == 200
    assert wrong.status_code == 401
    assert garbage.status_code == 401
    assert health.status_code == 200  # probes need no key


# -- roles and tenants -------------------------------------------------------------------------


async def test_roles_and_tenant_isolation(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        acme_writer = await make_key(client, "acme", "writer")
        acme_reader = await make_key(client, "acme", "reader")
        globex_writer = await make_key(client, "globex", "writer")

        created = await client.post("/timer", json={"hours": 1, "url": URL}, headers=bearer(acme_writer))
        assert created.status_code == 201
        timer_id = created.json()["timer_id"]
        other = await client.post("/timer", json={"hours": 2, "url": URL}, headers=bearer(globex_writer))
        other_id = other.json()["timer_id"]

        # a reader reads and lists its tenant's timers, and changes nothing
        assert (await client.get(f"/timer/{timer_id}", headers=bearer(acme_reader))).status_code == 200
        listed = (await client.get("/timers", headers=bearer(acme_reader))).json()["timers"]
        assert [t["timer_id"] for t in listed] == [timer_id]
        for method, path in [
            ("POST", "/timer"),
            ("DELETE", f"/timer/{timer_id}"),
            ("PATCH", f"/timer/{timer_id}"),
            ("POST", f"/timer/{timer_id}/retry"),
            ("POST", "/timers/batch"),
            ("POST", "/tenant/secrets"),
            ("GET", "/admin/keys"),
        ]:
            response = await client.request(method, path, json={}, headers=bearer(acme_reader))
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "forbidden"

        # another tenant gets 404 for it, as if it did not exist: ids reveal nothing
        for method, path in [
            ("GET", f"/timer/{timer_id}"),
            ("GET", f"/timer/{timer_id}/attempts"),
            ("DELETE", f"/timer/{timer_id}"),
            ("PATCH", f"/timer/{timer_id}"),
            ("POST", f"/timer/{timer_id}/retry"),
        ]:
            kwargs = {"json": {"minutes": 1}} if method == "PATCH" else {}
            response = await client.request(method, path, headers=bearer(globex_writer), **kwargs)
            assert response.status_code == 404, (method, path, response.text)
        assert (await client.get(f"/timer/{timer_id}", headers=bearer(acme_writer))).json()[
            "status"
        ] == "pending"

        # a writer cannot manage keys; an admin sees every tenant's timers
        assert (await client.get("/admin/keys", headers=bearer(acme_writer))).status_code == 403
        everything = (await client.get("/timers", headers=bearer(ADMIN_KEY))).json()["timers"]
        assert {t["timer_id"] for t in everything} == {timer_id, other_id}
        assert (await client.get(f"/timer/{other_id}", headers=bearer(ADMIN_KEY))).status_code == 200


async def test_schedules_are_tenant_scoped_with_the_timer_roles(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        acme_writer = await make_key(client, "acme", "writer")
        acme_reader = await make_key(client, "acme", "reader")
        globex_writer = await make_key(client, "globex", "writer")
        created = await client.post(
            "/schedules", json={"cron": "@hourly", "url": URL}, headers=bearer(acme_writer)
        )
        assert created.status_code == 201, created.text
        schedule_id = created.json()["schedule_id"]
        path = f"/schedules/{schedule_id}"
        # the schedule's runs belong to its tenant too
        (run,) = (await client.get(f"{path}/runs", headers=bearer(acme_reader))).json()["runs"]
        assert (
            await client.get(f"/timer/{run['timer_id']}", headers=bearer(globex_writer))
        ).status_code == 404
        listed = (await client.get("/schedules", headers=bearer(acme_reader))).json()["schedules"]
        assert [s["schedule_id"] for s in listed] == [schedule_id]
        assert (await client.get("/schedules", headers=bearer(globex_writer))).json()["schedules"] == []
        for method, route in [
            ("POST", "/schedules"),
            ("PATCH", path),
            ("DELETE", path),
            ("POST", f"{path}/pause"),
            ("POST", f"{path}/resume"),
            ("POST", f"{path}/trigger"),
        ]:
            response = await client.request(method, route, json={}, headers=bearer(acme_reader))
            assert response.status_code == 403, (method, route, response.text)
        for method, route in [
            ("GET", path),
            ("GET", f"{path}/runs"),
            ("PATCH", path),
            ("DELETE", path),
            ("POST", f"{path}/pause"),
            ("POST", f"{path}/trigger"),
        ]:
            response = await client.request(method, route, json={}, headers=bearer(globex_writer))
            assert response.status_code == 404, (method, route, response.text)
        assert (await client.get(path, headers=bearer(acme_reader))).json()["status"] == "active"
        assert (await client.get(path, headers=bearer(ADMIN_KEY))).status_code == 200


async def test_idempotency_keys_are_per_tenant(secured: Callable[..., Any]) -> None:
    async with secured() as client:
        acme = await make_key(client, "acme", "writer")
        globex = await make_key(client, "globex", "writer")
        body = {"hours": 1, "url": URL}
        first = await client.post("/timer", json=body, headers={**bearer(acme), "Idempotency-Key": "k1"})
        second = await client.post("/timer", json=body, headers={**bearer(globex), "Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == 201
    assert first.json()["timer_id"] != second.json()["timer_id"]


async def test_key_management_and_revocation(secured: Callable[..., Any], database_url: str) -> None:
    async with secured() as client:
        key = await make_key(client, "acme", "writer")
        key_id = key.split("_")[1]
        assert (await client.get("/timers", headers=bearer(key))).status_code == 200
        listed = (await client.get("/admin/keys", headers=bearer(ADMIN_KEY))).json()["keys"]
        assert {k["key_id"] for k in listed} >= {key_id}
        assert all("api_key" not in k for k in listed)
        revoked = await client.delete(f"/admin/keys/{key_id}", headers=bearer(ADMIN_KEY))
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        after = await client.get("/timers", headers=bearer(key))
        missing = await client.delete("/admin/keys/000000000000", headers=bearer(ADMIN_KEY))
    assert after.status_code == 401
    assert missing.status_code == 404
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        stored = await conn.fetch("SELECT key_id, key_hash FROM api_keys")
    finally:
        await conn.close()
    for row in stored:  # only hashes are stored
        assert key.encode() not in bytes(row["key_hash"])
        assert len(row["key_hash"]) == 32


async def test_admin_key_from_a_file(make_settings: Callable[..., Settings], tmp_path: Any) -> None:
    path = tmp_path / "admin.key"
    path.write_text(ADMIN_KEY + "\n")
    settings = make_settings(admin_api_key_file=path)
    async with serving(create_app(settings, run_dispatcher=False)) as client:
        assert (await client.get("/timers")).status_code == 401
        assert (await client.get("/timers", headers=bearer(ADMIN_KEY))).status_code == 200


def test_unsafe_admin_key_settings_refuse_to_start(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        make_settings(admin_api_key="short")
    with pytest.raises(ValueError, match="cannot read"):
        make_settings(admin_api_key_file=tmp_path / "missing")


# -- limits ------------------------------------------------------------------------------------


async def test_rate_limit_per_key(secured: Callable[..., Any]) -> None:
    async with secured(rate_limit_per_second=0.5, rate_limit_burst=3) as client:
        answers = [await client.get("/timers", headers=bearer(ADMIN_KEY)) for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    limited = answers[3]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "too_many_requests"
    assert "SCHEDULER_RATE_LIMIT_PER_SECOND" in limited.json()["error"]["message"]


async def test_pending_cap_per_tenant(secured: Callable[..., Any]) -> None:
    async with secured(max_pending_per_tenant=3) as client:
        acme = await make_key(client, "acme", "writer")
        globex = await make_key(client, "globex", "writer")
        answers = [
            await client.post("/timer", json={"hours": 1, "url": URL}, headers=bearer(acme)) for _ in range(4)
        ]
        batch = await client.post(
            "/timers/batch", json={"timers": [{"hours": 1, "url": URL}] * 2}, headers=bearer(globex)
        )
        too_big = await client.post(
            "/timers/batch", json={"timers": [{"hours": 1, "url": URL}] * 2}, headers=bearer(globex)
        )
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert "limit is 3" in answers[3].json()["error"]["message"]
    assert "SCHEDULER_MAX_PENDING_PER_TENANT" in answers[3].json()["error"]["message"]
    assert int(answers[3].headers["retry-after"]) >= 1
    assert batch.status_code == 201
    assert too_big.status_code == 429


async def test_schedule_runs_count_against_the_pending_cap(secured: Callable[..., Any]) -> None:
    """Regression: schedules made pending runs past the tenant's cap (one per schedule, and more
    by trigger and backfill), so a tenant could hold any number of pending timers."""
    async with secured(max_pending_per_tenant=3) as client:
        acme = await make_key(client, "acme", "writer")
        globex = await make_key(client, "globex", "writer")
        hourly = {"cron": "@hourly", "url": URL}
        timer = await client.post("/timer", json={"hours": 1, "url": URL}, headers=bearer(acme))
        first = await client.post("/schedules", json=hourly, headers=bearer(acme))
        schedule_id = first.json()["schedule_id"]
        triggered = await client.post(f"/schedules/{schedule_id}/trigger", headers=bearer(acme))
        second = await client.post("/schedules", json=hourly, headers=bearer(acme))
        trigger_past_cap = await client.post(f"/schedules/{schedule_id}/trigger", headers=bearer(acme))
        backfill = await client.post(
            f"/schedules/{schedule_id}/backfill",
            json={"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T05:00:00Z"},
            headers=bearer(acme),
        )
        other_tenant = await client.post("/schedules", json=hourly, headers=bearer(globex))
        pending = (await client.get("/timers", params={"status": "pending"}, headers=bearer(acme))).json()
    assert [timer.status_code, first.status_code, triggered.status_code] == [201, 201, 201]
    for refused in (second, trigger_past_cap, backfill):
        assert refused.status_code == 429, refused.text
        assert "SCHEDULER_MAX_PENDING_PER_TENANT" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) >= 1
    assert other_tenant.status_code == 201
    assert len(pending["timers"]) == 3


# -- tenant signing secrets --------------------------------------------------------------------


async def test_tenant_rotates_its_own_signing_secret(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = make_settings(admin_api_key=ADMIN_KEY, api_key_cache_seconds=0)
    async with serving(create_app(settings)) as client:
        acme = await make_key(client, "acme", "writer")
        globex = await make_key(client, "globex", "writer")
        first = (await client.post("/tenant/secrets", headers=bearer(acme))).json()
        second = (await client.post("/tenant/secrets", headers=bearer(acme))).json()
        listed = (await client.get("/tenant/secrets", headers=bearer(acme))).json()["secrets"]
        assert [s["secret_id"] for s in listed] == [second["secret_id"], first["secret_id"]]
        assert all("secret" not in s for s in listed)
        assert (await client.get("/tenant/secrets", headers=bearer(globex))).json()["secrets"] == []
        # another tenant cannot retire it
        assert (
            await client.delete(f"/tenant/secrets/{first['secret_id']}", headers=bearer(globex))
        ).status_code == 404
        await asyncio.sleep(1.0)  # the dispatcher refreshes secrets every 0.5 s here
        created = await client.post("/timer", json={"seconds": 0, "url": receiver.url}, headers=bearer(acme))
        assert created.status_code == 201
        assert await receiver.wait_for(lambda: len(receiver.deliveries) == 1, 20.0)
        retired = await client.delete(f"/tenant/secrets/{first['secret_id']}", headers=bearer(acme))
        assert retired.status_code == 204
    delivery = receiver.deliveries[0]
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (first["secret"], second["secret"]):
        Webhook(secret).verify(delivery.raw, headers)


async def test_a_tenant_has_at_most_ten_active_secrets(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(admin_api_key=ADMIN_KEY, api_key_cache_seconds=0)
    async with serving(create_app(settings, run_dispatcher=False)) as client:
        acme = await make_key(client, "acme", "writer")
        globex = await make_key(client, "globex", "writer")
        # Concurrent adds cannot pass the bound together.
        answers = await asyncio.gather(
            *(client.post("/tenant/secrets", headers=bearer(acme)) for _ in range(14))
        )
        assert sorted(a.status_code for a in answers) == [201] * MAX_ACTIVE_SECRETS + [409] * 4
        refused = next(a for a in answers if a.status_code == 409).json()["error"]
        assert refused["code"] == "limit_reached"
        assert refused["field"] == "secrets"
        assert "10 active signing secrets" in refused["message"]
        assert "DELETE /tenant/secrets/" in refused["message"]
        # Another tenant's count is its own; retiring one makes room again.
        assert (await client.post("/tenant/secrets", headers=bearer(globex))).status_code == 201
        oldest = (await client.get("/tenant/secrets", headers=bearer(acme))).json()["secrets"][-1]
        retired = await client.delete(f"/tenant/secrets/{oldest['secret_id']}", headers=bearer(acme))
        assert retired.status_code == 204
        assert (await client.post("/tenant/secrets", headers=bearer(acme))).status_code == 201
        assert (await client.post("/tenant/secrets", headers=bearer(acme))).status_code == 409


async def test_stored_secrets_past_the_bound_or_unreadable_fail_only_themselves(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    """Rows written from outside the API: 200 active secrets of one tenant (a signature each
    made the header 9.6 KB, over the receiver's 8 KiB line limit: every webhook of the tenant was
    refused) and undecodable secrets (one made every refresh fail, for every tenant). The newest
    ten sign; an unreadable row is left out; the other tenant's secret still signs."""
    settings = make_settings(admin_api_key=ADMIN_KEY, api_key_cache_seconds=0)
    secrets = [generate_secret() for _ in range(200)]
    globex_secret = generate_secret()
    assert settings.database_url is not None
    async with serving(create_app(settings)) as client:
        conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
        try:
            await conn.executemany(
                "INSERT INTO tenant_secrets (tenant, secret, created_at)"
                " VALUES ($1, $2, now() - make_interval(secs => $3))",
                [("acme", s, 200.0 - i) for i, s in enumerate(secrets)]  # the last is the newest
                + [("acme", "whsec_not base64!", 0.5), ("globex", "not-a-secret", 0.5)],
            )
            await conn.execute(
                "INSERT INTO tenant_secrets (tenant, secret) VALUES ('globex', $1)", globex_secret
            )
        finally:
            await conn.close()
        await asyncio.sleep(1.5)  # the dispatcher refreshes secrets every 0.5 s here
        acme = await make_key(client, "acme", "writer")
        globex = await make_key(client, "globex", "writer")
        for key in (acme, globex):
            created = await client.post(
                "/timer", json={"seconds": 0, "url": receiver.url}, headers=bearer(key)
            )
            assert created.status_code == 201, created.text
        assert await receiver.wait_for(lambda: len(receiver.deliveries) == 2, 20.0)
    by_tenant = {}
    for delivery in receiver.deliveries:
        headers = {k.lower(): v for k, v in delivery.headers.items()}
        by_tenant[len(headers["webhook-signature"].split(" "))] = (delivery, headers)
    assert set(by_tenant) == {MAX_ACTIVE_SECRETS, 1}
    delivery, headers = by_tenant[MAX_ACTIVE_SECRETS]
    for secret in secrets[-MAX_ACTIVE_SECRETS:]:
        Webhook(secret).verify(delivery.raw, headers)
    delivery, headers = by_tenant[1]
    Webhook(globex_secret).verify(delivery.raw, headers)


# -- hygiene -----------------------------------------------------------------------------------


async def test_security_headers_and_cors_off(api: httpx.AsyncClient) -> None:
    response = await api.get("/timers", headers={"Origin": "https://evil.example"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "access-control-allow-origin" not in response.headers
    docs = await api.get("/docs")
    assert "content-security-policy" not in docs.headers


async def test_cors_when_configured(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(cors_origins="https://app.example")
    async with serving(create_app(settings, run_dispatcher=False)) as client:
        allowed = await client.options(
            "/timer",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        other = await client.get("/timers", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


# -- the command line --------------------------------------------------------------------------


async def test_keys_command_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SCHEDULER_LOG_LEVEL", "WARNING")
    assert await asyncio.to_thread(main, ["keys", "create", "--role", "reader", "--tenant", "acme"]) == 0
    created = capsys.readouterr().out
    key = created.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    assert await asyncio.to_thread(main, ["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing
    assert key not in listing
    assert await asyncio.to_thread(main, ["keys", "revoke", key_id]) == 0
    assert await asyncio.to_thread(main, ["keys", "revoke", "000000000000"]) == 1
    assert await asyncio.to_thread(main, ["keys", "list"]) == 0
    assert "acme" in capsys.readouterr().out
