"""API keys over the HTTP API: a bootstrap admin key, and keys made with it for a tenant and role."""

from __future__ import annotations

import httpx

ADMIN_KEY = "operator-chosen-admin-key-0123456789-abcdef"
# Settings of an app with the bootstrap admin key and no key caching (revocations at once).
SECURED_SETTINGS = {"admin_api_key": ADMIN_KEY, "api_key_cache_seconds": 0}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(client: httpx.AsyncClient, tenant: str, role: str) -> str:
    """A new API key of `tenant` with `role`, made by the admin."""
    response = await client.post(
        "/admin/keys",
        json={"name": f"{tenant} {role}", "tenant": tenant, "role": role},
        headers=bearer(ADMIN_KEY),
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["api_key"]
    assert key.startswith("tsk_")
    return key
