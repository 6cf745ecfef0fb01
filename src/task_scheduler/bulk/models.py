"""The `bulk_jobs` table: an action (cancel, retry, reschedule) on the timers a filter matches,
done in the background in short batches by whichever instance holds the job's lease.

    from      to          by (bulk/repository.py)   when
    queued    running     take_job                  an instance's runner takes it
    running   running     take_job                  its lease lapsed (its instance stopped): taken over
    running   running     hold                      each batch renews the lease (lease only)
    running   done        advance                   a batch found fewer timers than a batch holds
    running   failed      fail_job                  a batch raised an error retrying cannot fix
    queued    cancelled   cancel_job                DELETE /timers/bulk/{id}
    running   cancelled   cancel_job                DELETE /timers/bulk/{id} (its batch in flight ends)

`last_timer_id` is the job's keyset cursor: every timer up to it has been handled, and it moves in
the same transaction as the timers of its batch, so a job taken over resumes after the last
committed batch and no timer is handled twice. `max_timer_id` is the newest timer when the job was
created: timers created later are left alone.
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
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from task_scheduler.db import metadata
from task_scheduler.timers.models import TimerStatus


class BulkState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BulkAction(StrEnum):
    CANCEL = "cancel"
    RETRY = "retry"
    RESCHEDULE = "reschedule"


# The statuses each action takes timers from (the timer state machine allows nothing else).
ACTION_SOURCES: dict[BulkAction, tuple[TimerStatus, ...]] = {
    BulkAction.CANCEL: (TimerStatus.PENDING,),
    BulkAction.RETRY: (TimerStatus.FAILED, TimerStatus.EXPIRED),
    BulkAction.RESCHEDULE: (TimerStatus.PENDING,),
}


def _in(name: str, values: type[StrEnum]) -> str:
    return f"{name} IN ({', '.join(repr(v.value) for v in values)})"


bulk_jobs = Table(
    "bulk_jobs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    # The tenant whose timers it acts on; NULL: an admin's job, over every tenant's.
    Column("tenant", Text, nullable=True),
    Column("action", Text, nullable=False),
    # reschedule: how far the due times move (negative: earlier).
    Column("offset_seconds", Double, nullable=True),
    Column("filter", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("state", Text, nullable=False, server_default=text("'queued'")),
    Column("max_timer_id", BigInteger, nullable=False),
    Column("last_timer_id", BigInteger, nullable=False, server_default=text("0")),
    Column("matched", BigInteger, nullable=False, server_default=text("0")),
    Column("done", BigInteger, nullable=False, server_default=text("0")),
    Column("skipped", BigInteger, nullable=False, server_default=text("0")),
    Column("lease_owner", Text, nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint(_in("state", BulkState), name="ck_bulk_jobs_state"),
    CheckConstraint(_in("action", BulkAction), name="ck_bulk_jobs_action"),
    # The runners look only at jobs not finished.
    Index("ix_bulk_jobs_unfinished", "id", postgresql_where=text("state IN ('queued', 'running')")),
)
