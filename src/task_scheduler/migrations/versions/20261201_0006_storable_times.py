"""storable times: due_at and deliver_before finite and from 1970 (CHECK), poison rows quarantined

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

The database as the last line behind the API's checks (timers/storable.py): asyncpg stored a
year-1 time as -infinity, which the dispatcher cannot handle. Rows that would violate the new
constraints are repaired first, so the upgrade of a database holding one never fails: a timer
not yet finished is quarantined (failed, "unprocessable: ..." in last_error, lease cleared; a
manual redrive sends it now), and the bad time is replaced (due_at by now(), deliver_before by
NULL). This one-time repair (pending -> failed included) is outside the runtime state machine.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same texts as the CheckConstraints in timers/models.py.
DUE_AT_STORABLE = "isfinite(due_at) AND due_at >= '1970-01-01 00:00:00+00'"
DELIVER_BEFORE_STORABLE = (
    "deliver_before IS NULL OR (isfinite(deliver_before) AND deliver_before >= '1970-01-01 00:00:00+00')"
)

_REPAIR = f"""
WITH poison AS (
    SELECT id, status,
           'unprocessable: ' || concat_ws('; ',
               CASE WHEN NOT ({DUE_AT_STORABLE}) THEN 'due_at was ' || CAST(due_at AS text) END,
               CASE WHEN NOT ({DELIVER_BEFORE_STORABLE})
                    THEN 'deliver_before was ' || CAST(deliver_before AS text) END
           ) AS reason,
           NOT ({DUE_AT_STORABLE}) AS bad_due,
           NOT ({DELIVER_BEFORE_STORABLE}) AS bad_cutoff
    FROM timers
    WHERE NOT ({DUE_AT_STORABLE}) OR NOT ({DELIVER_BEFORE_STORABLE})
)
UPDATE timers AS t
SET status = CASE WHEN p.status IN ('pending', 'firing') THEN 'failed' ELSE t.status END,
    last_error = CASE WHEN p.status IN ('delivered', 'cancelled') THEN t.last_error ELSE p.reason END,
    lease_owner = NULL,
    lease_expires_at = NULL,
    due_at = CASE WHEN p.bad_due THEN now() ELSE t.due_at END,
    deliver_before = CASE WHEN p.bad_cutoff THEN NULL ELSE t.deliver_before END,
    updated_at = now()
FROM poison AS p
WHERE t.id = p.id
"""


def upgrade() -> None:
    op.execute(_REPAIR)
    op.create_check_constraint("ck_timers_due_at_storable", "timers", DUE_AT_STORABLE)
    op.create_check_constraint("ck_timers_deliver_before_storable", "timers", DELIVER_BEFORE_STORABLE)


def downgrade() -> None:
    op.drop_constraint("ck_timers_deliver_before_storable", "timers", type_="check")
    op.drop_constraint("ck_timers_due_at_storable", "timers", type_="check")
