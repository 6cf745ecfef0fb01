"""Every way a webhook request can fail without a usable HTTP answer, classified in one table.

`classify(exc)` walks `FAILURES` top to bottom; the first row whose exception type matches names
the stored `error_class` and says whether another attempt can help. An exception no row knows is
`unexpected` (retried within the timer's attempts: one odd reply must not fail the engine).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from task_scheduler.delivery.ssrf import BlockedDestination
from task_scheduler.delivery.storable import storable_text

# Stored in timer_attempts.error_message and timers.last_error: readable, never a whole reply.
ERROR_MESSAGE_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Failure:
    error_class: str
    retryable: bool


BLOCKED_DESTINATION = Failure("blocked_destination", retryable=False)
INVALID_URL = Failure("invalid_url", retryable=False)
TIMEOUT = Failure("timeout", retryable=True)
INVALID_RESPONSE = Failure("invalid_response", retryable=True)
CONNECTION = Failure("connection", retryable=True)
UNEXPECTED = Failure("unexpected", retryable=True)

# Most specific first. Redirects are never followed, so aiohttp.TooManyRedirects cannot happen.
FAILURES: tuple[tuple[type[BaseException], Failure], ...] = (
    # An aiohttp.ClientConnectionError: the policy refused the destination, nothing was sent.
    (BlockedDestination, BLOCKED_DESTINATION),
    (aiohttp.InvalidURL, INVALID_URL),
    # Also aiohttp's ServerTimeoutError and ConnectionTimeoutError (TimeoutError subclasses).
    (TimeoutError, TIMEOUT),
    # The operator's proxy refused the tunnel: a ClientResponseError, but not the receiver's answer.
    (aiohttp.ClientHttpProxyError, CONNECTION),
    # aiohttp's parser refused the status line or the headers (wrapped from BadHttpMessage).
    (aiohttp.ClientResponseError, INVALID_RESPONSE),
    # The body broke its own framing (Content-Length, chunks).
    (aiohttp.ClientPayloadError, INVALID_RESPONSE),
    (HttpProcessingError, INVALID_RESPONSE),
    # Refused, reset, closed before an answer, DNS, TLS.
    (aiohttp.ClientError, CONNECTION),
    (OSError, CONNECTION),
)


def classify(exc: BaseException) -> Failure:
    for exc_type, failure in FAILURES:
        if isinstance(exc, exc_type):
            return failure
    return UNEXPECTED


def describe(exc: BaseException, failure: Failure, *, timeout_seconds: float) -> str:
    """The stored message: the class in words, then what the exception said (receiver bytes
    included, so made storable and capped)."""
    if failure is TIMEOUT:
        message = f"timeout: no complete answer within {timeout_seconds}s"
    elif isinstance(exc, BlockedDestination):
        message = f"blocked destination: {exc.reason}"
    elif failure is INVALID_URL:
        message = f"invalid url: {exc}"
    elif isinstance(exc, aiohttp.ClientResponseError):
        message = f"invalid response: {exc.message}"
    else:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        message = detail if failure is CONNECTION else f"{failure.error_class.replace('_', ' ')}: {detail}"
    return storable_text(message, limit=ERROR_MESSAGE_LIMIT)
