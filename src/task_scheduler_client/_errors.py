"""The library's exceptions, in one place.

TaskSchedulerError           anything this library raises about the service
├── ApiError                 the service answered 4xx/5xx: `status`, and the envelope's `code`,
│   │                        `message`, `field` (and `details`, every invalid field)
│   ├── Unauthorized         401: missing, invalid or revoked API key
│   ├── Forbidden            403: the key's role does not allow this
│   ├── NotFound             404
│   ├── Conflict             409: the timer's status (or a bound, `code` limit_reached) forbids it
│   ├── PreconditionFailed   412: If-Match no longer matches
│   ├── ValidationFailed     400, 413, 415, 422: the request is not acceptable
│   ├── RateLimited          429 (retried first, honouring Retry-After)
│   └── Unavailable          503 (retried first, honouring Retry-After)
├── TransportError           no answer, or one whose body cannot be decoded (`maybe_sent`: the
│                            request may have arrived all the same)
└── UnexpectedResponse       a success status whose body is not what the endpoint returns

WebhookVerificationError     (a ValueError) `verify_webhook` refused a delivery; `reason` says why
"""

from __future__ import annotations

from http import HTTPStatus

from pydantic import ValidationError

from task_scheduler_client._models import ErrorEnvelope, FieldProblem


class TaskSchedulerError(Exception):
    """Base of every error the client raises about the service or the network."""


class ApiError(TaskSchedulerError):
    """The service answered with an error status; its envelope's code, message and field."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        details: list[FieldProblem] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        """The HTTP status."""
        self.code = code
        """The envelope's machine-readable code, e.g. `not_found`."""
        self.message = message
        """What went wrong, for a person."""
        self.field = field
        """The input field at fault, if any."""
        self.details = details or [FieldProblem(field=field, message=message)]
        """Every invalid field (validation errors); the first is `field`/`message`."""
        self.retry_after = retry_after
        """Seconds the service asked to wait (Retry-After), if it did."""


class Unauthorized(ApiError):
    """401: the API key is missing, invalid or revoked."""


class Forbidden(ApiError):
    """403: the key's role does not allow this."""


class NotFound(ApiError):
    """404: no such timer, key or secret (or another tenant's)."""


class Conflict(ApiError):
    """409: the timer's status does not allow this (`field` is "status"), or a bound would be passed
    (`code` "limit_reached", e.g. a tenant's 10 active signing secrets: `field` is "secrets")."""


class PreconditionFailed(ApiError):
    """412: the timer changed since the ETag given as `if_match`."""


class ValidationFailed(ApiError):
    """The request was refused as invalid (400, 413, 415, 422); `field`/`details` name the fields."""


class RateLimited(ApiError):
    """429: too many requests, still after the client's retries."""


class Unavailable(ApiError):
    """503: the service (or its database) is unavailable, still after the client's retries."""


class TransportError(TaskSchedulerError):
    """No answer from the service (refused, timed out or cut), or one whose body cannot be decoded.

    `maybe_sent` is True when the request may have reached the service all the same.
    """

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent
        """True when the request may have arrived (and been acted on) all the same."""


class UnexpectedResponse(TaskSchedulerError):
    """A success status whose body is not the endpoint's answer: likely not this service."""

    def __init__(self, *, status: int, url: str) -> None:
        super().__init__(f"unexpected answer from {url} (HTTP {status}): is this a task-scheduler service?")
        self.status = status
        """The HTTP status."""
        self.url = url
        """The URL that answered."""


class WebhookVerificationError(ValueError):
    """A webhook delivery failed verification: answer it with 400 and do not act on it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        """Why, for logs (never holds a secret)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: ValidationFailed,
    415: ValidationFailed,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


def error_from_answer(*, status: int, text: str, retry_after: float | None = None) -> ApiError:
    """The exception for an error answer: the envelope's fields, or a status phrase and a snippet
    of the body when it is not the service's envelope (a proxy's page)."""
    kind = _BY_STATUS.get(status, ApiError)
    try:
        error = ErrorEnvelope.model_validate_json(text).error
    except ValidationError:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "error"
        snippet = " ".join(text.split())[:200] or "(empty answer)"
        return kind(
            status=status,
            code=phrase.lower().replace(" ", "_"),
            message=snippet,
            retry_after=retry_after,
        )
    return kind(
        status=status,
        code=error.code,
        message=error.message,
        field=error.field,
        details=error.details,
        retry_after=retry_after,
    )
