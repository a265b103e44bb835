"""Predictions keep the detector's logit and say how a run saw a leaked video.

A probability computed in float32 rounds every logit above about 17 to exactly 1.0, so
confident predictions tie and the ranking metrics recomputed from stored rows are biased;
`logit` keeps the order (and `score` is now computed in float64 from it). `leak` names how
the run saw the video (`ddm.vocab.Leak`: the same file, the same sequence at another
compression, a train/val split of a training dataset, or a shared identity group).

Existing predictions keep NULL in both: their evaluations are not reused (the reuse digest
now covers each video's leak), so the next report scores them again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("logit", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("leak", sa.String(length=16), nullable=True))
        batch_op.create_check_constraint(
            "leak_valid", "leak IS NULL OR leak IN ('file', 'sequence', 'split', 'identity')"
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_predictions_leak_valid"), type_="check")
        batch_op.drop_column("leak")
        batch_op.drop_column("logit")
