"""The client's exceptions, in one place.

ClientError            a failure the CLI reports as `task-scheduler: <message>`, exiting 1
├── ApiError           the service answered 4xx/5xx: its envelope's code, message and field
├── Unreachable        no answer (`maybe_sent`: the request may have arrived all the same)
└── UnexpectedAnswer   a 2xx answer that is not what the endpoint returns
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from pydantic import BaseModel, Field, ValidationError

from task_scheduler.errors import ErrorDetail


class ClientError(Exception):
    """A failure the command reports on stderr as `task-scheduler: <message>`, exiting 1."""


class ApiError(ClientError):
    """The service answered with an error status (its JSON error envelope, when it sent one)."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        problems: Sequence[tuple[str | None, str]] = (),
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        # Every (field, message) the service listed; the first is `field`/`message`.
        self.problems = list(problems) or [(field, message)]

    @classmethod
    def from_answer(cls, *, status: int, text: str) -> ApiError:
        """The envelope's code, message and field; a status phrase and a snippet for anything else."""
        try:
            error = _ErrorEnvelope.model_validate_json(text).error
        except ValidationError:
            # Not the service's envelope: a proxy's page, or not this service at all.
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "error"
            snippet = " ".join(text.split())[:200] or "(empty answer)"
            return cls(status=status, code=phrase.lower().replace(" ", "_"), message=snippet)
        return cls(
            status=status,
            code=error.code,
            message=error.message,
            field=error.field,
            problems=[(p.field, p.message) for p in error.details],
        )


class Unreachable(ClientError):
    """No answer from the service; `maybe_sent` when the request may have arrived all the same."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class UnexpectedAnswer(ClientError):
    """A success status with a body that is not the endpoint's model: likely not this service."""

    def __init__(self, *, status: int, url: str) -> None:
        super().__init__(f"unexpected answer from {url} (HTTP {status}): is this a task-scheduler service?")
        self.status = status
        self.url = url


class _FieldProblem(BaseModel):
    field: str | None = None
    message: str


class _ErrorWithDetails(ErrorDetail):
    details: list[_FieldProblem] = Field(default_factory=list)


class _ErrorEnvelope(BaseModel):
    error: _ErrorWithDetails
