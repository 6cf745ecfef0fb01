"""The webhook client: one pooled aiohttp session that sends a timer's request to its url."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from pydantic import JsonValue
from yarl import URL

from task_scheduler import __version__
from task_scheduler.delivery.signing import WebhookSigner
from task_scheduler.delivery.ssrf import AddressPolicy, BlockedDestination, GuardedResolver

USER_AGENT = f"task-scheduler/{__version__} (+webhook timer service)"
RESPONSE_BODY_LIMIT = 1024
_ERROR_BODY_CHARS = 200
# Statuses whose Retry-After header says when to come back.
_RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one attempt; `retryable` is False when trying again cannot help."""

    ok: bool
    status_code: int | None
    error: str | None
    retryable: bool
    duration_ms: float
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    error_class: str | None = None
    response_body: str | None = None
    retry_after_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str
    timer_id: int
    delivery_id: uuid.UUID
    attempt: int
    due_at: datetime
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: JsonValue = None
    labels: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    signer: WebhookSigner | None = None  # None: the client's own


def delivery_header_id(delivery_id: uuid.UUID) -> str:
    """The `webhook-id` header value: the same for every attempt of one timer."""
    return f"msg_{delivery_id.hex}"


def encode_body(request: WebhookRequest) -> tuple[bytes, str]:
    """The bytes to send and their default Content-Type."""
    if request.body is None:
        default = {
            "timer_id": request.timer_id,
            "due_at": request.due_at.isoformat(),
            "attempt": request.attempt,
            "labels": request.labels,
        }
        return json.dumps(default, separators=(",", ":")).encode(), "application/json"
    if isinstance(request.body, str):
        return request.body.encode(), "text/plain; charset=utf-8"
    return json.dumps(request.body, separators=(",", ":")).encode(), "application/json"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class WebhookClient:
    """Sends webhooks through one shared connection pool; redirects are never followed."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        total_timeout: float,
        max_connections: int,
        signer: WebhookSigner | None = None,
        policy: AddressPolicy | None = None,
        proxy: str | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._max_connections = max_connections
        self._signer = signer or WebhookSigner([])
        self._policy = policy or AddressPolicy()
        self._proxy = proxy
        self._resolver = GuardedResolver(self._policy)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # Without a proxy, the connector connects only to addresses the guarded resolver checked
        # (pinned: no second lookup for DNS rebinding to exploit). Through an operator's proxy,
        # the proxy connects; the target's addresses are still checked before each request.
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            ttl_dns_cache=60,
            enable_cleanup_closed=True,
            resolver=None if self._proxy else self._resolver,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._total_timeout, connect=self._connect_timeout),
            auto_decompress=False,
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._resolver.close()

    async def send(self, request: WebhookRequest) -> DeliveryResult:
        if self._session is None:
            raise RuntimeError("WebhookClient.start() was not called")
        body, content_type = encode_body(request)
        msg_id = delivery_header_id(request.delivery_id)
        headers = {"Content-Type": content_type, **request.headers, "User-Agent": USER_AGENT}
        signer = request.signer or self._signer
        headers.update(signer.headers(msg_id=msg_id, timestamp=int(time.time()), body=body))
        headers["X-Timer-Id"] = str(request.timer_id)
        headers["X-Timer-Attempt"] = str(request.attempt)
        total = request.timeout_seconds or self._total_timeout
        timeout = aiohttp.ClientTimeout(total=total, connect=min(self._connect_timeout, total))
        started_at = datetime.now(UTC)
        started = time.perf_counter()

        def result(
            *,
            ok: bool,
            status_code: int | None,
            error: str | None,
            retryable: bool,
            error_class: str | None = None,
            response_body: str | None = None,
            retry_after_seconds: float | None = None,
        ) -> DeliveryResult:
            return DeliveryResult(
                ok=ok,
                status_code=status_code,
                error=error,
                retryable=retryable,
                duration_ms=(time.perf_counter() - started) * 1000,
                started_at=started_at,
                error_class=error_class,
                response_body=response_body,
                retry_after_seconds=retry_after_seconds,
            )

        try:
            self._policy.check_url(request.url)  # IP literals never reach the resolver
            if self._proxy:
                url = URL(request.url)
                await self._resolver.resolve(url.raw_host or "", url.port or 0)
            async with self._session.request(
                request.method,
                request.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
                proxy=self._proxy,
            ) as response:
                status = response.status
                raw = await response.content.read(RESPONSE_BODY_LIMIT)
                text = raw.decode("utf-8", errors="replace")
                if 200 <= status < 300:
                    return result(
                        ok=True, status_code=status, error=None, retryable=False, response_body=text
                    )
                if 300 <= status < 400:
                    location = response.headers.get("Location", "")
                    return result(
                        ok=False,
                        status_code=status,
                        error=f"HTTP {status}: redirect to {location[:200]!r} not followed",
                        retryable=True,
                        error_class="redirect",
                        response_body=text,
                    )
                retry_after = (
                    parse_retry_after(response.headers.get("Retry-After"))
                    if status in _RETRY_AFTER_STATUSES
                    else None
                )
                snippet = text[:_ERROR_BODY_CHARS]
                return result(
                    ok=False,
                    status_code=status,
                    error=f"HTTP {status}: {snippet}".rstrip(": "),
                    retryable=status != 410,  # 410 Gone: the receiver says never again
                    error_class="http_status",
                    response_body=text,
                    retry_after_seconds=retry_after,
                )
        except TimeoutError:
            return result(
                ok=False,
                status_code=None,
                error=f"timeout: no complete answer within {total}s",
                retryable=True,
                error_class="timeout",
            )
        except BlockedDestination as exc:
            return result(
                ok=False,
                status_code=None,
                error=f"blocked destination: {exc.reason}",
                retryable=False,
                error_class="blocked_destination",
            )
        except aiohttp.InvalidURL as exc:
            return result(
                ok=False,
                status_code=None,
                error=f"invalid url: {exc}",
                retryable=False,
                error_class="invalid_url",
            )
        except (aiohttp.ClientError, OSError) as exc:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return result(ok=False, status_code=None, error=message, retryable=True, error_class="connection")
