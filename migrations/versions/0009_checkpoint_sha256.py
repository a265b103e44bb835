"""Runs record their best checkpoint's sha256, and evaluations the checkpoint that scored.

A `best.pt` replaced after training is not the run's model: `ddm report` refuses it, and
an evaluation is reused only for the same checkpoint (its sha256 joins the reuse key).
Existing runs and evaluations keep NULL: such a run is scored with whatever file is at
its path, as before, and its evaluations are stored again once, with the sha256.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkpoint_sha256", sa.String(length=64), nullable=True))
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkpoint_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("checkpoint_sha256")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("checkpoint_sha256")
