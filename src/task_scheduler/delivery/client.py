"""The webhook client: one pooled aiohttp session that POSTs a timer's payload to its url."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from task_scheduler import __version__

USER_AGENT = f"task-scheduler/{__version__} (+webhook timer service)"
_ERROR_BODY_CHARS = 200


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one attempt; `retryable` is False when trying again cannot help."""

    ok: bool
    status_code: int | None
    error: str | None
    retryable: bool
    duration_ms: float


def delivery_header_id(delivery_id: uuid.UUID) -> str:
    """The `webhook-id` header value: the same for every attempt of one timer."""
    return f"msg_{delivery_id.hex}"


class WebhookClient:
    """Sends webhooks through one shared connection pool; redirects are never followed."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        total_timeout: float,
        max_connections: int,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, ttl_dns_cache=60, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        *,
        url: str,
        timer_id: int,
        delivery_id: uuid.UUID,
        attempt: int,
        due_at: datetime,
    ) -> DeliveryResult:
        if self._session is None:
            raise RuntimeError("WebhookClient.start() was not called")
        body = json.dumps(
            {"timer_id": timer_id, "due_at": due_at.isoformat(), "attempt": attempt},
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": delivery_header_id(delivery_id),
            "webhook-timestamp": str(int(time.time())),
            "X-Timer-Id": str(timer_id),
            "X-Timer-Attempt": str(attempt),
        }
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return DeliveryResult(True, status, None, False, elapsed())
                snippet = (await response.content.read(_ERROR_BODY_CHARS)).decode(
                    "utf-8", errors="replace"
                )
                if 300 <= status < 400:
                    location = response.headers.get("Location", "")
                    error = f"HTTP {status}: redirect to {location!r} not followed"
                else:
                    error = f"HTTP {status}: {snippet}".rstrip(": ")
                return DeliveryResult(False, status, error, True, elapsed())
        except TimeoutError:
            return DeliveryResult(False, None, _timeout_message(self._timeout), True, elapsed())
        except aiohttp.InvalidURL as exc:
            return DeliveryResult(False, None, f"invalid url: {exc}", False, elapsed())
        except (aiohttp.ClientError, OSError) as exc:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return DeliveryResult(False, None, message, True, elapsed())


def _timeout_message(timeout: aiohttp.ClientTimeout) -> str:
    return f"timeout: no complete answer within {timeout.total}s (connect limit {timeout.connect}s)"
