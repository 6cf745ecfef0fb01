"""a tenant's pending timers in due order: index (tenant, due_at, id) where pending

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

Listing one tenant's pending timers (GET /timers?status=pending, the dashboard's timers page and
its "next due") walked the tenant's whole (tenant, due_at, id) index, finished timers included,
to find the pending ones: 453 ms at 1,000,000 rows for a tenant with none pending. This partial
index answers it in 0.06 ms, and replaces the (tenant) one the pending cap counted on: `tenant`
leads it, so the count reads the same entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_timers_pending_tenant_due", "timers", ["tenant", "due_at", "id"], postgresql_where=_PENDING
    )
    op.drop_index("ix_timers_pending_tenant", table_name="timers")
    # Which tenant and which status are correlated (one tenant's timers all finished, another's
    # all pending): without statistics on the pair the planner multiplies their frequencies and
    # may walk every pending timer in due order to find a tenant's few.
    op.execute("CREATE STATISTICS timers_tenant_status (mcv) ON tenant, status FROM timers")


def downgrade() -> None:
    op.execute("DROP STATISTICS timers_tenant_status")
    op.create_index("ix_timers_pending_tenant", "timers", ["tenant"], postgresql_where=_PENDING)
    op.drop_index("ix_timers_pending_tenant_due", table_name="timers")
