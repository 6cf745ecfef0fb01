"""Timer use cases: validate against the settings, call the repository, shape the answer."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from task_scheduler import metrics
from task_scheduler.config import Settings
from task_scheduler.db import INT4_MAX
from task_scheduler.delivery.client import delivery_header_id
from task_scheduler.delivery.ssrf import ALLOW_NETWORKS_HINT, AddressPolicy
from task_scheduler.destinations import repository as destinations
from task_scheduler.errors import (
    Conflict,
    NotFoundError,
    PreconditionFailed,
    ServiceError,
    ValidationFailed,
)
from task_scheduler.logs import log_event
from task_scheduler.schedules import engine as schedule_engine
from task_scheduler.timers import repository, storable
from task_scheduler.timers.capacity import PendingCap
from task_scheduler.timers.inserter import BatchInserter
from task_scheduler.timers.models import FINISHED, TimerStatus
from task_scheduler.timers.repository import (
    ATTEMPTS_PAGE as ATTEMPTS_PAGE,  # the API says it (router.py)
)
from task_scheduler.timers.repository import (
    TIMER_ROW,
    TIMER_SPEC,
    CreatedTimer,
    NewTimer,
    TimerRow,
)
from task_scheduler.timers.schemas import (
    MAX_LATENESS_SECONDS,
    AttemptList,
    AttemptView,
    EffectiveRetryPolicy,
    RetryPolicy,
    TimerBatch,
    TimerBatchCreated,
    TimerCreate,
    TimerCreated,
    TimerPage,
    TimerReplay,
    TimerUpdate,
    TimerView,
    _TimerFields,
)
from task_scheduler.timers.shape import RetrySpec

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SENSITIVE_HEADER_PARTS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "password",
    "api-key",
    "apikey",
)
REDACTED = "[redacted]"
_PENDING_COUNT_TTL_SECONDS = 5.0
PAST_FIRE_AT_NOTE = "fire_at is in the past: the timer fires now"


def seconds_left(due_at: datetime, now: datetime) -> int:
    """Whole seconds until `due_at`, rounded up, never negative."""
    return max(0, math.ceil((due_at - now).total_seconds()))


def etag_of(updated_at: datetime) -> str:
    """A strong ETag from the last change's timestamp (microseconds, exact)."""
    return f'"{(updated_at - _EPOCH) // timedelta(microseconds=1)}"'


def parse_etag(value: str) -> datetime | None:
    """The updated_at an If-Match value names; None for anything that is not one of our ETags."""
    tag = value.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 19:
        return None
    try:
        return _EPOCH + timedelta(microseconds=int(tag))
    except OverflowError:
        return None


def parse_if_match(value: str) -> list[datetime] | None:
    """The versions an If-Match list names (RFC 9110: any may match); None for `*`."""
    if value.strip() == "*":
        return None
    return [tag for part in value.split(",") if (tag := parse_etag(part)) is not None]


def redact_headers(headers: object) -> dict[str, str]:
    return {
        name: REDACTED if any(part in name.lower() for part in _SENSITIVE_HEADER_PARTS) else value
        for name, value in shown_object(headers).items()
    }


def shown_object(value: object) -> dict[str, str]:
    """Stored headers or labels as the API shows them. The service stores JSON objects of strings;
    a row written from outside may hold any JSON: a value that is not a string is shown as its JSON
    text, and anything but an object as no entries (the claim fails such a timer as unprocessable)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def encode_cursor(row: TimerRow) -> str:
    return encode_keyset(row.due_at, row.id)


def encode_keyset(due_at: datetime, timer_id: int) -> str:
    raw = json.dumps([due_at.isoformat(), timer_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        due_text, timer_id = json.loads(raw)
        due = datetime.fromisoformat(due_text)
        if due.tzinfo is None or not isinstance(timer_id, int) or not 0 <= timer_id < 2**63:
            raise ValueError("bad cursor")
        due.astimezone(UTC)  # OverflowError when it names no storable instant
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("cursor: not a cursor this API returned", field="cursor") from None
    return due, timer_id


def _attempt_cursor(cursor: str | None) -> int:
    """The attempt number a page of attempts goes on after (0: from the first)."""
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 10 or int(cursor) > INT4_MAX:
        raise ValidationFailed("cursor: not a cursor this API returned", field="cursor")
    return int(cursor)


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A page of a search by filters no index serves: the matches among `scanned` timers read."""

    timers: list[TimerView]
    next_cursor: str | None
    scanned: int


class TimerService:
    """Every use case takes the caller's `tenant`: the one a timer is created for, and the one
    whose timers alone a read or change may see (None: an admin, who sees every tenant's)."""

    def __init__(
        self, *, engine: AsyncEngine, settings: Settings, inserter: BatchInserter | None = None
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._inserter = inserter or BatchInserter(engine=engine, notify_within=settings.lookahead_seconds)
        self._pending_cap = PendingCap(
            engine=engine, cap=settings.max_pending_per_tenant, ttl_seconds=_PENDING_COUNT_TTL_SECONDS
        )
        self._address_policy = AddressPolicy.parse_allowed(settings.webhook_allowed_networks)
        self._retry_defaults = retry_defaults(settings)

    @property
    def pending_cap(self) -> PendingCap:
        """The tenants' pending-timer cap, shared with the schedules' runs."""
        return self._pending_cap

    async def close(self) -> None:
        await self._pending_cap.close()

    # -- creating ---------------------------------------------------------------------------

    async def create(
        self,
        new: TimerCreate,
        *,
        tenant: str,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[TimerCreated, bool]:
        """Create one timer; returns (answer, replayed) where replayed means the Idempotency-Key
        named an earlier identical request and nothing new was created. `traceparent`: the trace
        its deliveries continue (tracing on)."""
        timer = self._new_timer(new, tenant=tenant, prefix="", traceparent=traceparent)
        if idempotency_key is None:
            await self._pending_cap.reserve(tenant, 1)
            row = await self._inserter.insert(timer)
            created = _created(row, new)
        else:
            problem = storable.text_problem(idempotency_key)
            if problem is not None:
                raise ValidationFailed(f"Idempotency-Key {problem}", field="Idempotency-Key")
            # A replay creates nothing, so it must not be charged to (or refused by) the pending
            # cap: look first, and reserve (outside any transaction) only for a new timer.
            async with self._engine.connect() as conn:
                replay = await self._replay(conn, tenant, idempotency_key, new)
            if replay is not None:
                return replay, True
            await self._pending_cap.reserve(tenant, 1)
            async with self._engine.begin() as conn:
                replay = await self._replay(conn, tenant, idempotency_key, new)
                if replay is not None:  # a concurrent request with the same key created it
                    self._pending_cap.release(tenant, 1)
                    return replay, True
                (row,) = await repository.insert_timers(
                    conn, timers=[timer], notify_within=self._settings.lookahead_seconds
                )
                await repository.save_idempotency_key(
                    conn, tenant=tenant, key=idempotency_key, request_hash=_request_hash(new), timer_id=row.id
                )
                created = _created(row, new)  # before the commit: an answer that fails stores nothing
        metrics.TIMERS_CREATED.inc()
        log_event(logger, "timer.created", timer_id=row.id, due_at=row.due_at.isoformat())
        return created, False

    async def _replay(
        self, conn: AsyncConnection, tenant: str, key: str, new: TimerCreate
    ) -> TimerCreated | None:
        found = await repository.find_idempotency_key(
            conn, tenant=tenant, key=key, window_seconds=self._settings.idempotency_window_seconds
        )
        if found is None:
            return None
        request_hash, timer_id = found
        if request_hash != _request_hash(new):
            raise ValidationFailed(
                "Idempotency-Key was already used with a different request", field="Idempotency-Key"
            )
        row = await repository.get_timer(conn, timer_id=timer_id, tenant=tenant)
        assert row is not None  # the key row cascades away with its timer
        log_event(logger, "timer.create_replayed", timer_id=timer_id)
        return _created(row, new)

    async def create_batch(
        self, batch: TimerBatch, *, tenant: str, traceparent: str | None = None
    ) -> TimerBatchCreated:
        """All timers in one statement and one transaction: all are created or none."""
        timers = [
            self._new_timer(t, tenant=tenant, prefix=f"timers.{i}.", traceparent=traceparent)
            for i, t in enumerate(batch.timers)
        ]
        await self._pending_cap.reserve(tenant, len(timers))
        async with self._engine.begin() as conn:
            rows = await repository.insert_timers(
                conn, timers=timers, notify_within=self._settings.lookahead_seconds
            )
            # The answer is shaped before the commit: if that fails, nothing is stored, so a
            # client retrying the error cannot create the batch twice.
            # One validation of plain dicts (in pydantic-core) instead of 1,000 model constructions.
            answers = [_created_fields(r, t) for r, t in zip(rows, batch.timers, strict=True)]
            created = TimerBatchCreated.model_validate({"timers": answers})
        metrics.TIMERS_CREATED.inc(len(rows))
        log_event(logger, "timer.batch_created", count=len(rows), first_id=rows[0].id)
        return created

    def _new_timer(self, new: TimerCreate, *, tenant: str, prefix: str, traceparent: str | None) -> NewTimer:
        self._check(new, prefix=prefix)
        return NewTimer(
            **_spec_of(new),
            tenant=tenant,
            traceparent=traceparent,
            destination=new.destination,
            delay_seconds=None if new.fire_at is not None else float(new.total_seconds),
            fire_at=new.fire_at,
            max_lateness_seconds=None
            if new.max_lateness_seconds is None
            else float(new.max_lateness_seconds),
        )

    def _check(self, fields: _TimerFields, *, prefix: str) -> None:
        """The rules that depend on settings (pydantic checked the rest)."""
        settings = self._settings
        horizon = settings.max_horizon_seconds
        if fields.fire_at is not None:
            if (fields.fire_at - datetime.now(UTC)).total_seconds() > horizon:
                raise ValidationFailed(
                    f"{prefix}fire_at: more than the maximum of {horizon} seconds ahead",
                    field=f"{prefix}fire_at",
                )
        elif fields.total_seconds > horizon:
            unit = prefix + fields.largest_unit()
            raise ValidationFailed(
                f"{unit}: the timer would fire in {fields.total_seconds} seconds, more than the "
                f"maximum of {horizon} seconds",
                field=unit,
            )
        if fields.deliver_before is not None:
            latest = horizon + MAX_LATENESS_SECONDS  # as far as fire_at + max_lateness_seconds reach
            if (fields.deliver_before - datetime.now(UTC)).total_seconds() > latest:
                raise ValidationFailed(
                    f"{prefix}deliver_before: more than the maximum of {latest} seconds ahead",
                    field=f"{prefix}deliver_before",
                )
        for name in ("on_success_url", "on_failure_url"):
            notify_url = getattr(fields, name)
            blocked = None if notify_url is None else self._address_policy.literal_host_reason(notify_url)
            if blocked is not None:
                raise ValidationFailed(
                    f"{prefix}{name}: blocked destination: {blocked}; {ALLOW_NETWORKS_HINT}",
                    field=f"{prefix}{name}",
                )
        check_delivery(
            url=getattr(fields, "url", None),
            body=fields.body,
            retry=fields.retry,
            settings=settings,
            policy=self._address_policy,
            prefix=prefix,
        )
        if fields.deliver_before is not None and isinstance(fields, TimerCreate):
            # (an edit is checked against the stored due time, in its UPDATE)
            due = fields.fire_at or datetime.now(UTC) + timedelta(seconds=fields.total_seconds)
            if fields.deliver_before < due:
                raise ValidationFailed(
                    f"{prefix}deliver_before: earlier than the due time, the timer could never fire",
                    field=f"{prefix}deliver_before",
                )

    # -- reading ----------------------------------------------------------------------------

    async def get(self, timer_id: int, *, tenant: str | None) -> TimerView:
        async with self._engine.connect() as conn:
            row = await repository.get_timer(conn, timer_id=timer_id, tenant=tenant)
            if row is None:
                raise _not_found(timer_id)
            held = None
            if row.status is TimerStatus.PENDING and row.destination is not None:
                held = await destinations.held_reason(conn, tenant=row.tenant, key=row.destination)
        return self._view(row, held_reason=held)

    async def list(
        self,
        *,
        tenant: str | None,
        status: TimerStatus | None,
        labels: dict[str, str],
        due_after: datetime | None,
        due_before: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> TimerPage:
        after = decode_cursor(cursor) if cursor else None
        async with self._engine.connect() as conn:
            found = await repository.list_slice(
                conn,
                tenant=tenant,
                status=status,
                labels=labels,
                due_after=due_after,
                due_before=due_before,
                after=after,
                limit=limit,
            )
        page = found.rows
        next_cursor = encode_cursor(page[-1]) if found.more and page else None
        return TimerPage(timers=[self._view(r) for r in page], next_cursor=next_cursor)

    async def search(
        self,
        *,
        tenant: str | None,
        status: TimerStatus | None,
        labels: dict[str, str],
        due_after: datetime | None,
        due_before: datetime | None,
        host: str | None,
        error_class: str | None,
        cursor: str | None,
        limit: int,
        window: int,
    ) -> SearchPage:
        """The list, also by destination host and last error class, reading at most `window`
        timers per call (see repository.scan_timers); `next_cursor` goes on after the last match
        when the page is full, else after the window when it was read to its end."""
        after = decode_cursor(cursor) if cursor else None
        async with self._engine.connect() as conn:
            found = await repository.scan_timers(
                conn,
                tenant=tenant,
                status=status,
                labels=labels,
                due_after=due_after,
                due_before=due_before,
                after=after,
                host=host,
                error_class=error_class,
                window=window,
                limit=limit + 1,
            )
        page = found.rows[:limit]
        goes_on = found.goes_on_after(limit, window)
        next_cursor = None if goes_on is None else encode_keyset(*goes_on)
        return SearchPage(
            timers=[self._view(r) for r in page], next_cursor=next_cursor, scanned=found.scanned
        )

    async def attempts(
        self, timer_id: int, *, tenant: str | None, cursor: str | None = None, limit: int = ATTEMPTS_PAGE
    ) -> AttemptList:
        after = _attempt_cursor(cursor)
        async with self._engine.connect() as conn:
            if await repository.get_timer(conn, timer_id=timer_id, tenant=tenant) is None:
                raise _not_found(timer_id)
            records = await repository.list_attempts(conn, timer_id=timer_id, after=after, limit=limit + 1)
        page = records[:limit]
        next_cursor = str(page[-1].attempt) if len(records) > limit else None
        return AttemptList(
            attempts=[AttemptView.model_validate(r, from_attributes=True) for r in page],
            next_cursor=next_cursor,
        )

    # -- changing ---------------------------------------------------------------------------

    async def update(
        self, timer_id: int, changes: TimerUpdate, *, tenant: str | None, if_match: str | None
    ) -> TimerView:
        self._check(changes, prefix="")
        expected = None if if_match is None else parse_if_match(if_match)
        if expected == []:
            raise PreconditionFailed("If-Match does not name a version of this timer", field="If-Match")
        async with self._engine.begin() as conn:
            row = await repository.update_pending(
                conn,
                timer_id=timer_id,
                tenant=tenant,
                changes=_changed_columns(changes),
                delay_seconds=float(changes.total_seconds)
                if changes.reschedules and not changes.fire_at
                else None,
                fire_at=changes.fire_at,
                max_lateness_seconds=None
                if changes.max_lateness_seconds is None
                else float(changes.max_lateness_seconds),
                expected_updated_at=expected,
                notify_within=self._settings.lookahead_seconds,
            )
            current = (
                None
                if row is not None
                else await repository.get_timer(conn, timer_id=timer_id, tenant=tenant)
            )
        if row is None:
            if current is None:
                raise _not_found(timer_id)
            if current.status != TimerStatus.PENDING:
                raise _conflict(timer_id, current.status, "edited")
            if expected is not None and current.updated_at not in expected:
                raise PreconditionFailed(
                    f"timer {timer_id} changed since that ETag (now {etag_of(current.updated_at)})",
                    field="If-Match",
                )
            raise ValidationFailed(
                "deliver_before: the lateness cutoff would be earlier than the due time; send a new "
                "deliver_before or max_lateness_seconds with the new time",
                field="deliver_before",
            )
        log_event(logger, "timer.updated", timer_id=timer_id, fields=sorted(changes.model_fields_set))
        return self._view(row)

    async def cancel(self, timer_id: int, *, tenant: str | None) -> TimerView:
        async with self._engine.begin() as conn:
            row = await repository.cancel(conn, timer_id=timer_id, tenant=tenant)
            if row is None:
                raise await _refusal(conn, timer_id, tenant, "cancelled")
            if row.schedule_id is not None:  # a schedule's run: its series goes on without it
                await schedule_engine.skip_cancelled(
                    conn, run=row, notify_within=self._settings.lookahead_seconds
                )
        log_event(logger, "timer.cancelled", timer_id=timer_id)
        return self._view(row)

    async def redrive(self, timer_id: int, *, tenant: str | None) -> TimerView:
        async with self._engine.begin() as conn:
            row = await repository.redrive(
                conn, timer_id=timer_id, tenant=tenant, notify_within=self._settings.lookahead_seconds
            )
            if row is None:
                raise await _refusal(conn, timer_id, tenant, "retried (only failed or expired timers can be)")
        log_event(logger, "timer.redriven", timer_id=timer_id)
        return self._view(row)

    async def replay(
        self, timer_id: int, when: TimerReplay, *, tenant: str | None, traceparent: str | None = None
    ) -> TimerView:
        """A new timer with a finished timer's request, for the original's tenant, linked to it by
        `replay_of`; the original and its attempts stay as they are. Its deliveries continue the
        trace of `traceparent` (the replay request's, tracing on), not the original's."""
        horizon = self._settings.max_horizon_seconds
        if when.fire_at is not None and (when.fire_at - datetime.now(UTC)).total_seconds() > horizon:
            raise ValidationFailed(
                f"fire_at: more than the maximum of {horizon} seconds ahead", field="fire_at"
            )
        if when.delay_seconds is not None and when.delay_seconds > horizon:
            raise ValidationFailed(
                f"delay_seconds: more than the maximum of {horizon} seconds", field="delay_seconds"
            )
        async with self._engine.connect() as conn:
            original = await repository.get_timer(conn, timer_id=timer_id, tenant=tenant)
        if original is None:
            raise _not_found(timer_id)
        if original.status not in FINISHED:
            raise _conflict(timer_id, original.status, "replayed (only a finished timer can be)")
        await self._pending_cap.reserve(original.tenant, 1)
        async with self._engine.begin() as conn:
            (created,) = await repository.insert_timers(
                conn,
                timers=[_replay_of(original, when, traceparent)],
                notify_within=self._settings.lookahead_seconds,
            )
            row = await repository.get_timer(conn, timer_id=created.id, tenant=None)
        assert row is not None  # inserted in this transaction
        metrics.TIMERS_CREATED.inc()
        log_event(
            logger, "timer.replayed", timer_id=row.id, replay_of=timer_id, due_at=row.due_at.isoformat()
        )
        return self._view(row)

    def _view(self, row: TimerRow, *, held_reason: str | None = None) -> TimerView:
        retry = row.retry.or_defaults(self._retry_defaults)
        return TimerView.model_validate(
            {
                **TIMER_ROW.flatten(row),  # the stored fields, by name; the view takes the ones it shows
                "timer_id": row.id,
                "time_left": seconds_left(row.due_at, row.db_now),
                "delivery_id": delivery_header_id(row.delivery_id),
                "headers": redact_headers(row.request.headers),
                "labels": shown_object(row.labels),
                "retry": EffectiveRetryPolicy.model_validate(retry, from_attributes=True),
                "held_reason": held_reason,
            }
        )


def retry_defaults(settings: Settings) -> RetrySpec:
    """The service's retry policy: what a timer's unset retry fields take at firing time."""
    return RetrySpec(
        max_attempts=settings.max_attempts,
        backoff_base_seconds=settings.backoff_base_seconds,
        backoff_cap_seconds=settings.backoff_cap_seconds,
        timeout_seconds=settings.request_timeout_seconds,
    )


def check_delivery(
    *,
    url: str | None,
    body: JsonValue,
    retry: RetryPolicy | None,
    settings: Settings,
    policy: AddressPolicy,
    prefix: str = "",
) -> None:
    """The delivery rules that depend on settings, for a timer and a schedule alike: a blocked
    literal destination, the body size and a request timeout below the lease."""
    blocked = None if url is None else policy.literal_host_reason(url)
    if blocked is not None:
        raise ValidationFailed(
            f"{prefix}url: blocked destination: {blocked}; {ALLOW_NETWORKS_HINT}", field=f"{prefix}url"
        )
    if body is not None and _body_size(body) > settings.max_webhook_body_bytes:
        raise ValidationFailed(
            f"{prefix}body: larger than {settings.max_webhook_body_bytes} bytes",
            field=f"{prefix}body",
        )
    timeout = retry.timeout_seconds if retry else None
    if timeout is not None and timeout >= settings.lease_seconds:
        raise ValidationFailed(
            f"{prefix}retry.timeout_seconds: must be below the service's lease of {settings.lease_seconds} s",
            field=f"{prefix}retry.timeout_seconds",
        )


def _replay_of(original: TimerRow, when: TimerReplay, traceparent: str | None) -> NewTimer:
    """The new timer a replay of `original` inserts. Its lateness cutoff keeps the original's
    distance from its due time; a cutoff already behind the due time (moved by retries) is none."""
    lateness = None
    if original.deliver_before is not None and original.deliver_before > original.due_at:
        lateness = (original.deliver_before - original.due_at).total_seconds()
    return NewTimer(
        **TIMER_SPEC.kwargs({**TIMER_SPEC.flatten(original), "deliver_before": None}),
        tenant=original.tenant,
        delay_seconds=None if when.fire_at is not None else float(when.delay_seconds or 0),
        fire_at=when.fire_at,
        max_lateness_seconds=lateness,
        replay_of=original.id,
        traceparent=traceparent,
        destination=original.destination,
    )


def _created_fields(row: TimerRow | CreatedTimer, new: TimerCreate) -> dict[str, object]:
    fields: dict[str, object] = {"timer_id": row.id, "time_left": seconds_left(row.due_at, row.db_now)}
    if new.fire_at is not None and row.due_at <= row.db_now:
        fields["note"] = PAST_FIRE_AT_NOTE
    return fields


def _created(row: TimerRow | CreatedTimer, new: TimerCreate) -> TimerCreated:
    return TimerCreated.model_validate(_created_fields(row, new))


def _from_api(fields: _TimerFields) -> dict[str, tuple[str, object]]:
    """Each column of a timer's spec: (the API field that gives it, its value or None). The API
    has a value object's fields either under the object's name (`retry`) or at the top (`method`,
    `headers`, `body`)."""
    found: dict[str, tuple[str, object]] = {}
    for column, path in TIMER_SPEC.paths.items():
        source: object = fields
        api_field = column
        if len(path) > 1 and path[0] in type(fields).model_fields:
            api_field, source = path[0], getattr(fields, path[0])
        found[column] = (api_field, None if source is None else getattr(source, column))
    return found


def _spec_of(new: TimerCreate) -> dict[str, Any]:
    """The TimerSpec arguments of a new timer: an omitted or null field takes its default."""
    given = _from_api(new).items()
    return TIMER_SPEC.kwargs(
        {c: TIMER_SPEC.default(c) if value is None else value for c, (_, value) in given}
    )


# An edit's null leaves these as they are (every timer has them); any other null takes the default.
_NULL_KEEPS = frozenset({"url", "method"})


def _changed_columns(changes: TimerUpdate) -> dict[str, object]:
    given = changes.model_fields_set
    columns: dict[str, object] = {}
    for column, (api_field, value) in _from_api(changes).items():
        if api_field not in given or (value is None and column in _NULL_KEEPS):
            continue
        columns[column] = TIMER_SPEC.default(column) if value is None else value
    return columns


def _body_size(body: JsonValue) -> int:
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return len(text.encode())


def _request_hash(new: TimerCreate) -> str:
    return hashlib.sha256(new.model_dump_json(exclude_unset=True).encode()).hexdigest()


async def _refusal(conn: AsyncConnection, timer_id: int, tenant: str | None, verb: str) -> ServiceError:
    """Why a conditional update changed nothing: no such timer (404), or its status (409)."""
    current = await repository.get_timer(conn, timer_id=timer_id, tenant=tenant)
    return _not_found(timer_id) if current is None else _conflict(timer_id, current.status, verb)


def _not_found(timer_id: int) -> NotFoundError:
    return NotFoundError(f"timer {timer_id} does not exist", field="timer_id")


def _conflict(timer_id: int, status: TimerStatus, verb: str) -> Conflict:
    return Conflict(f"timer {timer_id} is {status} and cannot be {verb}", status=status)
