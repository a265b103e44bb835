"""Evaluations say what they scored: the extractor, the caches, held-out or not; each
prediction keeps the label it was scored against and whether the run had seen the video.

An evaluation is reused when its run, dataset, split and `caches_digest` (a hash of every
evaluated video's id and cache checksum) are unchanged. `leaked_videos` counts evaluated
videos that were in the run's train or val membership (by video, or by content hash when
the same file sits in two datasets); `is_held_out` is false when there is any. Existing
evaluations keep NULLs and count as held out.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("caches_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("n_videos", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("leaked_videos", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("is_held_out", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("threshold", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("left_out", sa.JSON(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_evaluations_run_id_dataset_id_split"),
            ["run_id", "dataset_id", "split"],
            unique=False,
        )

    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=8), nullable=True))
        batch_op.add_column(
            sa.Column("is_leaked", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_check_constraint(
            "label_valid", "label IS NULL OR label IN ('real', 'fake')"
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_predictions_label_valid"), type_="check")
        batch_op.drop_column("is_leaked")
        batch_op.drop_column("label")

    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluations_run_id_dataset_id_split"))
        batch_op.drop_column("left_out")
        batch_op.drop_column("threshold")
        batch_op.drop_column("is_held_out")
        batch_op.drop_column("leaked_videos")
        batch_op.drop_column("n_videos")
        batch_op.drop_column("caches_digest")
        batch_op.drop_column("fingerprint")
