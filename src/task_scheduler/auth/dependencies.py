"""FastAPI dependencies: who is calling (`Reader`, `Writer`, `Admin`), from `Authorization:
Bearer <key>` or `X-API-Key: <key>`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from task_scheduler.auth.models import Role
from task_scheduler.auth.service import AuthService, Principal, require_role

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <API key>`")


async def get_auth_service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


async def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
    auth: Annotated[AuthService, Depends(get_auth_service)],
) -> Principal:
    raw_key = bearer.credentials if bearer is not None else api_key
    client = request.client.host if request.client is not None else None
    return await auth.authenticate(raw_key, client)


def _require(role: Role) -> object:
    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        require_role(principal, role)
        return principal

    return Depends(dependency)


Reader = Annotated[Principal, _require(Role.READER)]
Writer = Annotated[Principal, _require(Role.WRITER)]
Admin = Annotated[Principal, _require(Role.ADMIN)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
