"""datasets.ingest_version: two ingests of one dataset at once must not lose an update.

Each ingest records only if the version is the one it read before probing, and bumps it;
a stale ingest scans again instead of overwriting what the other recorded. Existing
datasets start at 0.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ingest_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("ingest_version")
