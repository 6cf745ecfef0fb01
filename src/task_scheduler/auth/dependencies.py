"""FastAPI dependencies: who is calling (`Reader`, `Writer`, `Admin`), from `Authorization:
Bearer <key>` or `X-API-Key: <key>`.

The key is read by one plain dependency per route. FastAPI's security classes (`HTTPBearer`,
`APIKeyHeader`) would document the same, but as three more dependencies to solve per request
(a measurable share of a create's CPU); `document_security` writes the same schemes into the
OpenAPI document instead."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIRouter

from task_scheduler.auth.models import Role
from task_scheduler.auth.service import AuthService, Principal, require_role

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <API key>`"},
    "APIKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "`X-API-Key: <API key>`",
    },
}
_EITHER_SCHEME: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
_PRINCIPAL_DEPENDENCIES: set[Callable[..., Any]] = set()


def presented_key(headers: Mapping[str, str]) -> str | None:
    """`Authorization: Bearer <key>` (scheme in any case), else `X-API-Key`, else None."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


async def get_auth_service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth_service
    return service


def _require(role: Role) -> object:
    async def principal(request: Request) -> Principal:
        auth = await get_auth_service(request)
        client = request.client.host if request.client is not None else None
        found = await auth.authenticate(presented_key(request.headers), client)
        require_role(found, role)
        return found

    _PRINCIPAL_DEPENDENCIES.add(principal)
    return Depends(principal)


def _needs_key(dependant: Dependant) -> bool:
    return any(d.call in _PRINCIPAL_DEPENDENCIES or _needs_key(d) for d in dependant.dependencies)


def document_security(app: FastAPI, *routers: APIRouter) -> None:
    """Put the two ways to present a key into the OpenAPI document, on every operation of
    `routers` (included without a prefix) that takes one."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            for route in (r for router in routers for r in router.routes):
                if isinstance(route, APIRoute) and _needs_key(route.dependant):
                    for method in route.methods or ():
                        schema["paths"][route.path_format][method.lower()]["security"] = _EITHER_SCHEME
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


Reader = Annotated[Principal, _require(Role.READER)]
Writer = Annotated[Principal, _require(Role.WRITER)]
Admin = Annotated[Principal, _require(Role.ADMIN)]
AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
