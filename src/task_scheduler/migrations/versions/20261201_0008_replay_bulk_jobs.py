"""replay and bulk jobs: timers get replay_of (issue 16)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

`replay_of` names the timer a replay copied its request from. It is not a foreign key: retention
deletes finished timers in batches, and a reference would make each delete look up (and lock)
the replays; a replay whose original is gone keeps the id, and GET of that id answers 404.
Nullable without a default: existing rows are not rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("timers", sa.Column("replay_of", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("timers", "replay_of")
