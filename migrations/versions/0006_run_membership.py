"""Training runs freeze what they used: run_members, and the run's sizes, files and extractor.

Each member row is one (run, video, role) with the label and the feature cache (path and
checksum) the run read, so a later ingest or re-extraction never changes what a run says it
trained on. Runs gain the extractor fingerprint of their members, their train/val sizes,
the folder of their checkpoints and TensorBoard files, and the last epoch's full state.
Existing runs start with no members and sizes of 0.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=80), nullable=True))
        batch_op.add_column(
            sa.Column("train_videos", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("val_videos", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("run_dir", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_state_path", sa.Text(), nullable=True))

    op.create_table(
        "run_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("cache_path", sa.Text(), nullable=False),
        sa.Column("cache_checksum", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=True),
        sa.CheckConstraint("role IN ('train', 'val')", name=op.f("ck_run_members_role_valid")),
        sa.CheckConstraint("label IN ('real', 'fake')", name=op.f("ck_run_members_label_valid")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_members_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_run_members_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_members")),
        sa.UniqueConstraint("run_id", "video_id", name=op.f("uq_run_members_run_id_video_id")),
    )
    with op.batch_alter_table("run_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_run_members_run_id_role"), ["run_id", "role"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_run_members_content_hash"), ["content_hash"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("run_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_members_content_hash"))
        batch_op.drop_index(batch_op.f("ix_run_members_run_id_role"))
    op.drop_table("run_members")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("last_state_path")
        batch_op.drop_column("run_dir")
        batch_op.drop_column("val_videos")
        batch_op.drop_column("train_videos")
        batch_op.drop_column("fingerprint")
