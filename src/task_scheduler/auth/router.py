"""HTTP routes for API keys (admin) and a tenant's own webhook signing secrets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from task_scheduler.auth.dependencies import Admin, AuthServiceDep, Writer
from task_scheduler.auth.repository import ApiKeyRow, TenantSecretRow
from task_scheduler.auth.schemas import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyView,
    SecretCreated,
    SecretList,
    SecretView,
)
from task_scheduler.delivery.signing import MAX_ACTIVE_SECRETS
from task_scheduler.errors import ErrorResponse

router = APIRouter()
_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "Missing, invalid or revoked API key."),
        (403, "The key's role does not allow this."),
        (404, "No such key or secret."),
        (400, "The body could not be read (not UTF-8, nested too deeply)."),
        (413, "Request body too large."),
        (415, "The body is not JSON."),
        (422, "Invalid input; the error names the field."),
        (429, "Rate limit exceeded; see Retry-After."),
        (503, "The database is unreachable; try again."),
    )
}


def _key_view(row: ApiKeyRow) -> KeyView:
    return KeyView(
        key_id=row.key_id,
        name=row.name,
        tenant=row.tenant,
        role=row.role,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _secret_view(row: TenantSecretRow) -> SecretView:
    return SecretView(secret_id=row.id, created_at=row.created_at, hint=row.secret[:10] + "…")


@router.post(
    "/admin/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses=_AUTH_ERRORS,
    tags=["admin"],
    summary="Create an API key (shown once)",
)
async def create_key(body: KeyCreate, _admin: Admin, auth: AuthServiceDep) -> KeyCreated:
    raw_key, row = await auth.create_key(name=body.name, tenant=body.tenant, role=body.role)
    return KeyCreated(**_key_view(row).model_dump(), api_key=raw_key)


@router.get(
    "/admin/keys", response_model=KeyList, responses=_AUTH_ERRORS, tags=["admin"], summary="List API keys"
)
async def list_keys(_admin: Admin, auth: AuthServiceDep) -> KeyList:
    return KeyList(keys=[_key_view(row) for row in await auth.list_keys()])


@router.delete(
    "/admin/keys/{key_id}",
    response_model=KeyView,
    responses=_AUTH_ERRORS,
    tags=["admin"],
    summary="Revoke an API key",
)
async def revoke_key(
    key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{1,12}$", description="The key's public id.")],
    _admin: Admin,
    auth: AuthServiceDep,
) -> KeyView:
    return _key_view(await auth.revoke_key(key_id))


@router.post(
    "/tenant/secrets",
    status_code=status.HTTP_201_CREATED,
    response_model=SecretCreated,
    responses={
        **_AUTH_ERRORS,
        409: {
            "model": ErrorResponse,
            "description": f"The tenant already has the most active secrets ({MAX_ACTIVE_SECRETS}); retire one first.",
        },
    },
    tags=["signing secrets"],
    summary="Add a webhook signing secret for your tenant (rotation step 1)",
)
async def add_secret(principal: Writer, auth: AuthServiceDep) -> SecretCreated:
    row = await auth.add_secret(principal.tenant)
    return SecretCreated(**_secret_view(row).model_dump(), secret=row.secret)


@router.get(
    "/tenant/secrets",
    response_model=SecretList,
    responses=_AUTH_ERRORS,
    tags=["signing secrets"],
    summary="Your tenant's active signing secrets",
)
async def list_secrets(principal: Writer, auth: AuthServiceDep) -> SecretList:
    return SecretList(secrets=[_secret_view(row) for row in await auth.list_secrets(principal.tenant)])


@router.delete(
    "/tenant/secrets/{secret_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_AUTH_ERRORS,
    tags=["signing secrets"],
    summary="Retire a signing secret (rotation step 2, once receivers have the new one)",
)
async def revoke_secret(
    secret_id: Annotated[int, Path(ge=1, le=2**63 - 1)], principal: Writer, auth: AuthServiceDep
) -> None:
    await auth.revoke_secret(principal.tenant, secret_id)
