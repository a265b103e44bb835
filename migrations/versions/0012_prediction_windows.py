"""Per-window predictions of long-video evaluations (`ddm report --segments`).

A new, empty table: nothing to backfill, instant on any catalog size.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evaluation_id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        sa.Column("stride_seconds", sa.Float(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start_frame", sa.Integer(), nullable=False),
        sa.Column("end_frame", sa.Integer(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("logit", sa.Float(), nullable=False),
        sa.Column("frames_sampled", sa.Integer(), nullable=False),
        sa.Column("fallback_frames", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["evaluations.id"],
            name=op.f("fk_prediction_windows_evaluation_id_evaluations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_prediction_windows_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_windows")),
        sa.UniqueConstraint(
            "evaluation_id",
            "window_seconds",
            "stride_seconds",
            "video_id",
            "index",
            name="uq_prediction_windows_key",
        ),
    )
    with op.batch_alter_table("prediction_windows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prediction_windows_video_id"), ["video_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("prediction_windows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_windows_video_id"))
    op.drop_table("prediction_windows")
