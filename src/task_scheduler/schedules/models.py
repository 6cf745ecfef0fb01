"""The `schedules` table: a cron expression in a time zone, and the delivery fields every one of
its runs (an ordinary timer, `timers.schedule_id`) is created with.

    status    to        by (schedules/repository.py)   when
    active    paused    pause                          POST /schedules/{id}/pause
    paused    active    resume                         POST /schedules/{id}/resume
    active    ended     end / advance                  DELETE, or end_at / max_runs reached
    paused    ended     end                            DELETE

`next_occurrence_at` is the series' cursor: the occurrence time of its one pending run (while
active), or the one the series resumes from (while paused); NULL once ended.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from task_scheduler.db import metadata


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class Overlap(StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    BUFFER_ONE = "buffer_one"


class Catchup(StrEnum):
    LATEST = "latest"
    ALL = "all"
    NONE = "none"


def _in(name: str, values: type[StrEnum]) -> str:
    return f"{name} IN ({', '.join(repr(v.value) for v in values)})"


schedules = Table(
    "schedules",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", Text, nullable=False, server_default=text("'default'")),
    Column("status", Text, nullable=False, server_default=text("'active'")),
    # As given, and its normalised spelling (what the engine parses).
    Column("expression", Text, nullable=False),
    Column("cron", Text, nullable=False),
    Column("timezone", Text, nullable=False, server_default=text("'UTC'")),
    Column("start_at", DateTime(timezone=True), nullable=True),
    Column("end_at", DateTime(timezone=True), nullable=True),
    Column("max_runs", BigInteger, nullable=True),
    # Occurrences fired (skipped ones and triggered runs do not count).
    Column("runs", BigInteger, nullable=False, server_default=text("0")),
    Column("jitter_seconds", Double, nullable=False, server_default=text("0")),
    Column("overlap", Text, nullable=False, server_default=text("'allow'")),
    Column("catchup", Text, nullable=False, server_default=text("'latest'")),
    Column("catchup_window_seconds", Double, nullable=False, server_default=text("3600")),
    Column("next_occurrence_at", DateTime(timezone=True), nullable=True),
    # The delivery fields of every run (the timer shape's RequestSpec and RetrySpec columns).
    Column("url", Text, nullable=False),
    Column("method", Text, nullable=False, server_default=text("'POST'")),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("body", JSONB, nullable=True),
    Column("labels", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("max_lateness_seconds", Double, nullable=True),
    Column("max_attempts", Integer, nullable=True),
    Column("backoff_base_seconds", Double, nullable=True),
    Column("backoff_cap_seconds", Double, nullable=True),
    Column("timeout_seconds", Double, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint(_in("status", ScheduleStatus), name="ck_schedules_status"),
    CheckConstraint(_in("overlap", Overlap), name="ck_schedules_overlap"),
    CheckConstraint(_in("catchup", Catchup), name="ck_schedules_catchup"),
    # GET /schedules: one tenant's schedules in id order.
    Index("ix_schedules_tenant_id", "tenant", "id"),
    Index(
        "ix_schedules_labels",
        "labels",
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    ),
)
