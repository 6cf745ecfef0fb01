"""The service's exceptions, in one place, and the one JSON error envelope every 4xx/5xx uses.

    ServiceError
    ├── Unauthorized           401 unauthorized (missing, invalid or revoked API key)
    ├── Forbidden              403 forbidden (the key's role does not allow this)
    ├── NotFoundError          404 not_found
    ├── ValidationFailed       422 validation_error
    ├── Conflict               409 conflict (carries the timer's current status)
    ├── PreconditionFailed     412 precondition_failed (If-Match did not match)
    ├── TooManyRequests        429 too_many_requests (with Retry-After)
    └── ServiceUnavailable     503 service_unavailable (shutting down; with Retry-After)

Answered without an exception of this tree (web.py): 413 payload_too_large (the body limit) and
503 database_unavailable (the database's own connection errors).

Envelope: {"error": {"code": str, "message": str, "field": str | null}}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers: dict[str, str] = {}


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="Authorization")
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class TooManyRequests(ServiceError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_seconds)}


class NotFoundError(ServiceError):
    status_code = 404
    code = "not_found"


class ValidationFailed(ServiceError):
    status_code = 422
    code = "validation_error"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message, field="status")
        self.status = status


class LimitReached(ServiceError):
    """A count the service bounds (e.g. a tenant's active signing secrets) would be exceeded."""

    status_code = 409
    code = "limit_reached"


class PreconditionFailed(ServiceError):
    status_code = 412
    code = "precondition_failed"


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": "1"}


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code.", examples=["validation_error"])
    message: str = Field(
        description="What went wrong, for a person.", examples=["url: must be http or https"]
    )
    field: str | None = Field(default=None, description="The input field at fault, if any.", examples=["url"])


class FieldError(BaseModel):
    field: str | None = Field(description="The input field at fault.", examples=["url"])
    message: str = Field(description="What is wrong with it.", examples=["url: must include a host"])


class ErrorDetailWithFields(ErrorDetail):
    details: list[FieldError] | None = Field(
        default=None, description="Every invalid field, for validation errors (the first is in message)."
    )


class ErrorResponse(BaseModel):
    """The envelope of every error response."""

    error: ErrorDetailWithFields


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}
