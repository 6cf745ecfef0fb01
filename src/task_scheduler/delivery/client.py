"""The webhook client: one pooled aiohttp session that sends a timer's request to its url."""

from __future__ import annotations

import codecs
import json
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from task_scheduler import __version__
from task_scheduler.delivery.failures import ERROR_MESSAGE_LIMIT, UNEXPECTED, classify, describe
from task_scheduler.delivery.signing import WebhookSigner
from task_scheduler.delivery.ssrf import AddressPolicy, GuardedResolver
from task_scheduler.delivery.storable import storable_text
from task_scheduler.logs import log_event
from task_scheduler.timers.shape import RawJson, RequestSpec

logger = logging.getLogger(__name__)

USER_AGENT = f"task-scheduler/{__version__} (+webhook timer service)"
RESPONSE_BODY_LIMIT = 1024
_ERROR_BODY_CHARS = 200
_HEADER_CHARS = 200  # of a reply's Location, Retry-After or Content-Encoding
_NOTE_CHARS = 300
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
    """One attempt of a timer's webhook: what to send, and the ids its headers and default body name."""

    url: str
    timer_id: int
    delivery_id: uuid.UUID
    attempt: int
    due_at: datetime
    request: RequestSpec = field(default_factory=RequestSpec)
    labels: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    signer: WebhookSigner | None = None  # None: the client's own
    # A schedule's run: the schedule and the occurrence it stands for (None: triggered by hand).
    schedule_id: int | None = None
    occurrence_at: datetime | None = None
    # The W3C `traceparent` naming this attempt's span (tracing on); None: no such header is added.
    traceparent: str | None = None


def delivery_header_id(delivery_id: uuid.UUID) -> str:
    """The `webhook-id` header value: the same for every attempt of one timer."""
    return f"msg_{delivery_id.hex}"


def encode_body(webhook: WebhookRequest) -> tuple[bytes, str]:
    """The bytes to send and their default Content-Type."""
    body = webhook.request.body
    if body is None:
        default = {
            "timer_id": webhook.timer_id,
            "due_at": webhook.due_at.isoformat(),
            "attempt": webhook.attempt,
            "labels": webhook.labels,
        }
        if webhook.schedule_id is not None:
            default["schedule_id"] = webhook.schedule_id
            default["occurrence_at"] = _iso(webhook.occurrence_at)
        return json.dumps(default, separators=(",", ":")).encode(), "application/json"
    if isinstance(body, RawJson):  # a claimed timer's: jsonb's text, sent as it is
        return body.text.encode(), "application/json"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body, separators=(",", ":")).encode(), "application/json"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also accepts '²' and other scripts
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
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
        self._default_timeout = aiohttp.ClientTimeout(
            total=total_timeout, connect=min(connect_timeout, total_timeout)
        )

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
            timeout=self._default_timeout,
            auto_decompress=False,
            trust_env=False,
            # A receiver's cookies are never sent back, nor to other tenants' timers of its host.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._resolver.close()

    async def send(self, webhook: WebhookRequest) -> DeliveryResult:
        """One attempt; never raises (but for cancellation): every failure becomes a result whose
        text fields are storable as they are."""
        if self._session is None:
            raise RuntimeError("WebhookClient.start() was not called")
        total = webhook.timeout_seconds or self._total_timeout
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            answer = await self._exchange(self._session, webhook, total)
        except Exception as exc:  # noqa: BLE001 - the table classifies; one reply fails only itself
            duration_ms = (time.perf_counter() - started) * 1000
            return _transport_failure(
                webhook, exc, timeout_seconds=total, duration_ms=duration_ms, started_at=started_at
            )
        return judge(answer, duration_ms=(time.perf_counter() - started) * 1000, started_at=started_at)

    async def _exchange(
        self, session: aiohttp.ClientSession, webhook: WebhookRequest, total: float
    ) -> _Answer:
        """Send the request and read the answer; raises what the transport raised."""
        body, headers = self._build(webhook)
        self._policy.check_url(webhook.url)  # IP literals never reach the resolver
        if self._proxy:
            url = URL(webhook.url)
            await self._resolver.resolve(url.raw_host or "", url.port or 0)
        # Most timers use the default timeout: one object for them all (building one per send costs CPU).
        timeout = (
            self._default_timeout
            if total == self._total_timeout
            else aiohttp.ClientTimeout(total=total, connect=min(self._connect_timeout, total))
        )
        answer: _Answer | None = None
        try:
            async with session.request(
                webhook.request.method,
                webhook.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
                proxy=self._proxy,
            ) as response:
                answer = await _read_answer(response, timeout_seconds=total)
        except Exception:
            if answer is None:
                raise
            # The answer was complete; only closing the connection failed.
        return answer

    def _build(self, webhook: WebhookRequest) -> tuple[bytes, CIMultiDict[str]]:
        """The body and headers to send: the timer's headers, then the service's own on top."""
        body, content_type = encode_body(webhook)
        msg_id = delivery_header_id(webhook.delivery_id)
        headers: CIMultiDict[str] = CIMultiDict(webhook.request.headers)
        headers.setdefault("Content-Type", content_type)
        # Only a 1 KiB excerpt of the reply is kept, so compression buys nothing; unasked, the
        # receiver sends plain text, with no decoder (nor zip bomb) to guard. A timer may still ask.
        headers.setdefault("Accept-Encoding", "identity")
        headers["User-Agent"] = USER_AGENT
        signer = webhook.signer or self._signer
        headers.update(signer.headers(msg_id=msg_id, timestamp=int(time.time()), body=body))
        headers["X-Timer-Id"] = str(webhook.timer_id)
        headers["X-Timer-Attempt"] = str(webhook.attempt)
        if webhook.traceparent is not None:  # the receiver's trace continues ours
            headers["traceparent"] = webhook.traceparent
        if webhook.schedule_id is not None:
            headers["X-Schedule-Id"] = str(webhook.schedule_id)
            if webhook.occurrence_at is not None:
                headers["X-Schedule-Occurrence"] = webhook.occurrence_at.isoformat()
        return body, headers


def _transport_failure(
    webhook: WebhookRequest,
    exc: Exception,
    *,
    timeout_seconds: float,
    duration_ms: float,
    started_at: datetime,
) -> DeliveryResult:
    """No usable answer: the failures table (failures.py) names the error class."""
    failure = classify(exc)
    if failure is UNEXPECTED:
        log_event(
            logger,
            "webhook.unexpected_error",
            logging.WARNING,
            timer_id=webhook.timer_id,
            attempt=webhook.attempt,
            error=repr(exc)[:ERROR_MESSAGE_LIMIT],
        )
    return DeliveryResult(
        ok=False,
        status_code=None,
        error=describe(exc, failure, timeout_seconds=timeout_seconds),
        retryable=failure.retryable,
        duration_ms=duration_ms,
        started_at=started_at,
        error_class=failure.error_class,
    )


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the client keeps of an HTTP answer, every text already storable."""

    status: int
    location: str | None
    retry_after: str | None
    excerpt: str


async def _read_answer(response: aiohttp.ClientResponse, *, timeout_seconds: float) -> _Answer:
    """The status and headers arrived: whatever happens reading the body, this is an answer."""
    return _Answer(
        status=response.status,
        location=storable_text(response.headers.get("Location"), limit=_HEADER_CHARS),
        retry_after=storable_text(response.headers.get("Retry-After"), limit=_HEADER_CHARS),
        excerpt=await _read_excerpt(response, timeout_seconds=timeout_seconds),
    )


async def _read_excerpt(response: aiohttp.ClientResponse, *, timeout_seconds: float) -> str:
    """The first RESPONSE_BODY_LIMIT bytes of the body as storable text, or a note saying why not."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        return storable_text(
            f"[{encoding[:_HEADER_CHARS]}-encoded body, not decoded]", limit=RESPONSE_BODY_LIMIT
        )
    raw = bytearray()
    note = ""
    try:
        while len(raw) < RESPONSE_BODY_LIMIT:
            chunk = await response.content.read(RESPONSE_BODY_LIMIT - len(raw))
            if not chunk:
                break
            raw += chunk
            if response.content.at_eof():  # the whole body is here: spare the read that says so
                break
    except Exception as exc:  # noqa: BLE001 - a body that breaks off does not undo the status
        failure = classify(exc)
        note = f"[body cut short: {describe(exc, failure, timeout_seconds=timeout_seconds)[:_NOTE_CHARS]}]"
    # A character cut in two by the limit is dropped rather than shown as U+FFFD.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(bytes(raw), final=len(raw) < RESPONSE_BODY_LIMIT)
    if note:
        text = f"{text[: RESPONSE_BODY_LIMIT - len(note) - 1]} {note}".lstrip()
    return storable_text(text, limit=RESPONSE_BODY_LIMIT)


def judge(answer: _Answer, *, duration_ms: float, started_at: datetime) -> DeliveryResult:
    """The verdict on an HTTP answer: 2xx delivered, 3xx a redirect not followed, else a failure."""
    status = answer.status
    ok = 200 <= status < 300
    error: str | None = None
    error_class: str | None = None
    retry_after: float | None = None
    if 300 <= status < 400:
        error_class = "redirect"
        error = f"HTTP {status}: redirect to {(answer.location or '')[:200]!r} not followed"
    elif not ok:
        error_class = "http_status"
        error = f"HTTP {status}: {answer.excerpt[:_ERROR_BODY_CHARS]}".rstrip(": ")
        if status in _RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(answer.retry_after)
    return DeliveryResult(
        ok=ok,
        status_code=status,
        error=storable_text(error, limit=ERROR_MESSAGE_LIMIT),
        retryable=not ok and status != 410,  # 410 Gone: the receiver says never again
        duration_ms=duration_ms,
        started_at=started_at,
        error_class=error_class,
        response_body=answer.excerpt,
        retry_after_seconds=retry_after,
    )
