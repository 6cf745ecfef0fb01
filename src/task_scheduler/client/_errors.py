"""The client's exceptions, in one place.

ClientError            a failure the CLI reports as `task-scheduler: <message>`, exiting 1
├── ApiError           the service answered 4xx/5xx: its envelope's code, message and field
│                      (the library's ApiError, as the CLI reports it)
├── Unreachable        no answer (`maybe_sent`: the request may have arrived all the same)
└── UnexpectedAnswer   a 2xx answer that is not what the endpoint returns
"""

from __future__ import annotations

from collections.abc import Sequence

from task_scheduler_client import UnexpectedResponse


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


class Unreachable(ClientError):
    """No answer from the service; `maybe_sent` when the request may have arrived all the same."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class UnexpectedAnswer(ClientError, UnexpectedResponse):
    """A success status with a body that is not the endpoint's model: likely not this service."""
