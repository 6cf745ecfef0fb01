"""Who is calling: API keys, roles, tenants, protected mode, per-key rate limits."""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from task_scheduler.auth import repository
from task_scheduler.auth.keys import generate_key, hash_key, key_id_of
from task_scheduler.auth.models import ROLE_RANK, Role
from task_scheduler.auth.repository import ApiKeyRow, TenantSecretRow
from task_scheduler.config import Settings
from task_scheduler.delivery.signing import MAX_ACTIVE_SECRETS, generate_secret
from task_scheduler.errors import Forbidden, LimitReached, NotFoundError, TooManyRequests, Unauthorized
from task_scheduler.logs import log_event

logger = logging.getLogger(__name__)

DEFAULT_TENANT = "default"
PROTECTED_MODE_MESSAGE = (
    "no API key exists yet, so only requests from this machine are served; create an admin key "
    "with `task-scheduler keys create --role admin` or set SCHEDULER_ADMIN_API_KEY"
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a tenant and a role, from an API key (or from loopback in protected mode)."""

    tenant: str
    role: Role
    key_id: str | None

    def allows(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def visible_tenant(self) -> str | None:
        """The tenant whose timers this caller sees; None for admins, who see every tenant."""
        return None if self.role is Role.ADMIN else self.tenant


class _TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = burst, time.monotonic()

    def take(self) -> float:
        """0 if a request may go now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


T = TypeVar("T")


class AuthService:
    def __init__(self, *, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._keys: dict[str, tuple[float, ApiKeyRow | None]] = {}
        self._any_key: tuple[float, bool] = (0.0, False)
        self._buckets: dict[str, _TokenBucket] = {}
        # Lookups in flight, shared by every request that needs the same answer meanwhile: when a
        # cached answer expired under load, each of the concurrent requests read it again, and
        # the pool opened (and closed) extra connections for them every 2 s.
        self._flights: dict[str, asyncio.Future[Any]] = {}
        # Moved on by every change of the keys: an answer read before it is not cached after it.
        self._generation = 0

    # -- authenticating ---------------------------------------------------------------------

    async def authenticate(self, raw_key: str | None, client_host: str | None) -> Principal:
        if not raw_key:
            if await self._any_active_key():
                raise Unauthorized("missing API key: send Authorization: Bearer <key> or X-API-Key")
            if not _is_loopback(client_host):
                raise Unauthorized(PROTECTED_MODE_MESSAGE)
            principal = Principal(tenant=DEFAULT_TENANT, role=Role.ADMIN, key_id=None)
        else:
            row = await self._lookup(key_id_of(raw_key))
            # compare_digest: the time taken does not reveal how much of the hash matched.
            if row is None or not hmac.compare_digest(row.key_hash, hash_key(raw_key)) or row.revoked_at:
                raise Unauthorized("invalid or revoked API key")
            principal = Principal(tenant=row.tenant, role=row.role, key_id=row.key_id)
        self._rate_limit(principal.key_id or "loopback")
        return principal

    async def session_key(self, key_id: str) -> tuple[Principal, bytes] | None:
        """A dashboard session's caller and its key's stored hash (which signs the session);
        None once the key is revoked or gone. Cached like `authenticate`'s lookup."""
        row = await self._lookup(key_id)
        if row is None or row.revoked_at is not None:
            return None
        self._rate_limit(row.key_id)
        return Principal(tenant=row.tenant, role=row.role, key_id=row.key_id), row.key_hash

    async def _lookup(self, key_id: str) -> ApiKeyRow | None:
        cached = self._keys.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return await self._shared(f"key:{key_id}", functools.partial(self._read_key, key_id))

    async def _read_key(self, key_id: str) -> ApiKeyRow | None:
        generation = self._generation
        async with self._engine.connect() as conn:
            row = await repository.find_key(conn, key_id=key_id)
        if generation == self._generation:
            if len(self._keys) > 10_000:
                self._keys.clear()  # bounded: unknown key ids are cached too
            self._keys[key_id] = (time.monotonic() + self._settings.api_key_cache_seconds, row)
        return row

    async def _any_active_key(self) -> bool:
        until, exists = self._any_key
        if until > time.monotonic():
            return exists
        return await self._shared("any-key", self._read_any_key)

    async def _read_any_key(self) -> bool:
        generation = self._generation
        async with self._engine.connect() as conn:
            exists = await repository.active_key_exists(conn)
        if generation == self._generation:
            self._any_key = (time.monotonic() + min(self._settings.api_key_cache_seconds, 2.0), exists)
        return exists

    async def _shared(self, name: str, read: Callable[[], Awaitable[T]]) -> T:
        """`read()`'s answer, read once for every caller that asks while it is being read. A
        caller cancelled while waiting does not cancel the read the others wait for."""
        flight = self._flights.get(name)
        if flight is None:
            flight = asyncio.ensure_future(read())
            self._flights[name] = flight
            flight.add_done_callback(functools.partial(self._landed, name))
        answer: T = await asyncio.shield(flight)
        return answer

    def _landed(self, name: str, flight: asyncio.Future[Any]) -> None:
        if self._flights.get(name) is flight:
            del self._flights[name]
        if not flight.cancelled():
            flight.exception()  # retrieved: the callers got it (or all of them were cancelled)

    def _keys_changed(self) -> None:
        self._generation += 1
        self._flights.clear()  # later callers read again; earlier ones get what was in flight
        self._any_key = (0.0, False)

    def _rate_limit(self, bucket_key: str) -> None:
        rate = self._settings.rate_limit_per_second
        if rate <= 0:
            return
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            bucket = self._buckets[bucket_key] = _TokenBucket(
                rate, self._settings.rate_limit_burst or 2 * rate
            )
        wait = bucket.take()
        if wait > 0:
            raise TooManyRequests(
                f"rate limit of {rate:g} requests/s for this key exceeded (SCHEDULER_RATE_LIMIT_PER_SECOND)",
                retry_after_seconds=max(1, math.ceil(wait)),
            )

    # -- managing keys ----------------------------------------------------------------------

    async def bootstrap(self, raw_key: str) -> None:
        """Make sure the operator's admin key exists (a revoked one stays revoked)."""
        async with self._engine.begin() as conn:
            row = await repository.insert_key(
                conn,
                key_id=key_id_of(raw_key),
                key_hash=hash_key(raw_key),
                name="bootstrap (SCHEDULER_ADMIN_API_KEY)",
                tenant=DEFAULT_TENANT,
                role=Role.ADMIN,
            )
        log_event(logger, "auth.bootstrap_key", key_id=row.key_id, revoked=row.revoked_at is not None)

    async def create_key(self, *, name: str, tenant: str, role: Role) -> tuple[str, ApiKeyRow]:
        raw_key, key_id = generate_key()
        async with self._engine.begin() as conn:
            row = await repository.insert_key(
                conn, key_id=key_id, key_hash=hash_key(raw_key), name=name, tenant=tenant, role=role
            )
        self._keys_changed()
        log_event(logger, "auth.key_created", key_id=key_id, tenant=tenant, role=role.value)
        return raw_key, row

    async def list_keys(self) -> list[ApiKeyRow]:
        async with self._engine.connect() as conn:
            return await repository.list_keys(conn)

    async def revoke_key(self, key_id: str) -> ApiKeyRow:
        async with self._engine.begin() as conn:
            row = await repository.revoke_key(conn, key_id=key_id)
        if row is None:
            raise NotFoundError(f"API key {key_id} does not exist", field="key_id")
        self._keys.pop(key_id, None)
        self._keys_changed()
        log_event(logger, "auth.key_revoked", key_id=key_id)
        return row

    # -- tenant signing secrets -------------------------------------------------------------

    async def add_secret(self, tenant: str) -> TenantSecretRow:
        async with self._engine.begin() as conn:
            row = await repository.insert_secret(
                conn, tenant=tenant, secret=generate_secret(), most_active=MAX_ACTIVE_SECRETS
            )
        if row is None:
            raise LimitReached(
                f"the tenant already has {MAX_ACTIVE_SECRETS} active signing secrets, the most it may"
                " have (every webhook carries a signature per secret); retire one with"
                " DELETE /tenant/secrets/{secret_id} first",
                field="secrets",
            )
        log_event(logger, "auth.secret_added", tenant=tenant, secret_id=row.id)
        return row

    async def list_secrets(self, tenant: str) -> list[TenantSecretRow]:
        async with self._engine.connect() as conn:
            return await repository.active_secrets(conn, tenant=tenant)

    async def revoke_secret(self, tenant: str, secret_id: int) -> None:
        async with self._engine.begin() as conn:
            if not await repository.revoke_secret(conn, tenant=tenant, secret_id=secret_id):
                raise NotFoundError(f"secret {secret_id} does not exist", field="secret_id")
        log_event(logger, "auth.secret_revoked", tenant=tenant, secret_id=secret_id)


def require_role(principal: Principal, role: Role) -> None:
    if not principal.allows(role):
        raise Forbidden(f"this API key's role ({principal.role}) does not allow this; it needs {role}")


@functools.lru_cache(maxsize=1024)
def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
